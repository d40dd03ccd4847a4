"""The denoising UNet's down, mid and up blocks: SD 1.5's blocks plus motion modules.

Upstream "inflates" every 2D layer of Stable Diffusion 1.5 to video by applying it to each frame
separately (``InflatedConv3d``, ``InflatedGroupNorm``: reshape ``[B, C, F, H, W]`` to
``[B * F, C, H, W]``, run the 2D layer, reshape back; ``Transformer3DModel``: the spatial
transformer per frame, the text/image context repeated per frame).  Rather than reshaping
around every layer, these blocks keep the video in the ``[B * F, C, H, W]`` layout (frames
batch-major) throughout and pass ``frames`` along; only the motion modules look across frames.
This is the same computation, and it lets diffusers' own 2D layers be used unchanged where
their names and arithmetic match upstream exactly:

* ``ResnetBlock2D`` (``norm1, conv1, time_emb_proj, norm2, conv2[, conv_shortcut]``; default
  time-embedding add, SiLU), with the time embedding repeated per frame by the caller;
* ``Transformer2DModel`` (GroupNorm eps 1e-6, 1x1 ``proj_in``/``proj_out`` convolutions, one
  ``BasicTransformerBlock`` with ``attn1`` self-, ``attn2`` cross-attention and GEGLU ``ff``):
  the reference attention (:mod:`faceshot_aniportrait.reference_attention`) hooks these blocks'
  ``attn1`` in both UNets alike;
* ``Downsample2D`` (3x3 stride-2 ``conv``, padding 1) and ``Upsample2D`` (nearest x2 or to a
  given size, then 3x3 ``conv``).

Child registration order follows upstream (attentions, resnets, motion_modules, then the
resampler), so state-dict keys come out in the released files' order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.upsampling import Upsample2D
from torch import nn

from faceshot_aniportrait.motion_module import MAX_FRAMES, MotionModule


@dataclass(frozen=True)
class BlockSpec:
    """What every block of one UNet shares (the UNet's configuration, per block)."""

    temb_channels: int
    cross_attention_dim: int
    attention_heads: int
    norm_num_groups: int
    norm_eps: float
    motion_heads: int = 8
    motion_layers: int = 1
    motion_attentions: int = 2
    #: Upstream never hands the UNet's group count to the motion modules: always 32.
    motion_norm_groups: int = 32
    motion_max_frames: int = MAX_FRAMES

    def resnet(self, cin: int, cout: int) -> ResnetBlock2D:
        """SD 1.5's residual block (applied to every frame alike)."""
        return ResnetBlock2D(
            in_channels=cin,
            out_channels=cout,
            temb_channels=self.temb_channels,
            eps=self.norm_eps,
            groups=self.norm_num_groups,
            non_linearity="silu",
        )

    def transformer(self, channels: int) -> Transformer2DModel:
        """SD 1.5's spatial transformer (``heads`` heads of ``channels / heads``)."""
        return Transformer2DModel(
            num_attention_heads=self.attention_heads,
            attention_head_dim=channels // self.attention_heads,
            in_channels=channels,
            num_layers=1,
            cross_attention_dim=self.cross_attention_dim,
            norm_num_groups=self.norm_num_groups,
        )

    def motion(self, channels: int) -> MotionModule:
        """A Vanilla motion module at this width."""
        return MotionModule(
            channels,
            heads=self.motion_heads,
            num_layers=self.motion_layers,
            num_attentions=self.motion_attentions,
            norm_groups=self.motion_norm_groups,
            max_frames=self.motion_max_frames,
        )


def _spatial(attention: nn.Module, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = attention(x, encoder_hidden_states=context, return_dict=False)[0]
    return out


def _temporal(modules: nn.ModuleList, i: int, x: torch.Tensor, frames: int) -> torch.Tensor:
    """The ``i``-th motion module of a block, or nothing where the block has none."""
    return modules[i](x, frames) if len(modules) else x


class DownBlock3D(nn.Module):
    """``layers`` x (resnet [-> spatial transformer] [-> motion module]) [-> downsampler].

    Returns the block's output and its skips: every layer's output, then the downsampled one.
    """

    def __init__(
        self,
        spec: BlockSpec,
        cin: int,
        cout: int,
        layers: int,
        *,
        cross_attention: bool,
        motion: bool,
        downsample: bool,
    ) -> None:
        super().__init__()
        if cross_attention:
            self.attentions = nn.ModuleList(spec.transformer(cout) for _ in range(layers))
        self.resnets = nn.ModuleList(
            spec.resnet(cin if i == 0 else cout, cout) for i in range(layers)
        )
        self.motion_modules = nn.ModuleList(spec.motion(cout) for _ in range(layers * motion))
        self.downsamplers = (
            nn.ModuleList([Downsample2D(cout, use_conv=True, out_channels=cout, name="op")])
            if downsample
            else None
        )
        self.has_cross_attention = cross_attention

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, frames: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips: list[torch.Tensor] = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.has_cross_attention:
                x = _spatial(self.attentions[i], x, context)
            x = _temporal(self.motion_modules, i, x, frames)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class MidBlock3D(nn.Module):
    """resnet, then spatial transformer -> motion module -> resnet (SD 1.5 has one such step)."""

    def __init__(self, spec: BlockSpec, channels: int, *, motion: bool) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([spec.transformer(channels)])
        self.resnets = nn.ModuleList([spec.resnet(channels, channels) for _ in range(2)])
        self.motion_modules = nn.ModuleList([spec.motion(channels)] if motion else [])

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, frames: int
    ) -> torch.Tensor:
        x = self.resnets[0](x, temb)
        for i, resnet in enumerate(self.resnets[1:]):
            x = _spatial(self.attentions[i], x, context)
            x = _temporal(self.motion_modules, i, x, frames)
            x = resnet(x, temb)
        return x


class UpBlock3D(nn.Module):
    """``layers`` x (concat a skip -> resnet [-> transformer] [-> motion module]) [-> upsampler].

    Skips are taken last-first; the last layer's skip comes from the next-shallower level
    (``skip_channels``), the others from this level (``cout``).
    """

    def __init__(
        self,
        spec: BlockSpec,
        cin: int,
        cout: int,
        skip_channels: int,
        layers: int,
        *,
        cross_attention: bool,
        motion: bool,
        upsample: bool,
    ) -> None:
        super().__init__()
        if cross_attention:
            self.attentions = nn.ModuleList(spec.transformer(cout) for _ in range(layers))
        self.resnets = nn.ModuleList(
            spec.resnet(
                (cin if i == 0 else cout) + (skip_channels if i == layers - 1 else cout), cout
            )
            for i in range(layers)
        )
        self.motion_modules = nn.ModuleList(spec.motion(cout) for _ in range(layers * motion))
        self.upsamplers = (
            nn.ModuleList([Upsample2D(cout, use_conv=True, out_channels=cout)])
            if upsample
            else None
        )
        self.has_cross_attention = cross_attention

    def forward(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        temb: torch.Tensor,
        context: torch.Tensor,
        frames: int,
        upsample_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips[-1 - i]], dim=1), temb)
            if self.has_cross_attention:
                x = _spatial(self.attentions[i], x, context)
            x = _temporal(self.motion_modules, i, x, frames)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x
