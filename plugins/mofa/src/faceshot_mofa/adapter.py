"""The landmark adapter's modules, laid out exactly as the released ``ldmk_controlnet`` weights.

MOFA-Video's adapter is a ControlNet for the Stable Video Diffusion UNet.  Its encoder *is* the
SVD UNet's down path, so diffusers' own blocks are reused: a full
``UNetSpatioTemporalConditionModel`` is built at the released configuration and its
``conv_in``, ``time_embedding``, ``add_embedding``, ``down_blocks`` and ``mid_block`` are kept
(the up path is dropped).  Around it sit the parts written here, named so that the released
state dict loads with no key left over or missing:

* ``controlnet_cond_embedding`` (reference image -> 320 channels at 1/8) and
  ``controlnet_ldmk_embedding`` (landmark images -> 320 at 1/8): diffusers'
  ``ControlNetConditioningEmbedding`` with the released channel ladders;
* ``flow_encoder``: three stride-2 convolutions (each followed by SiLU) that carry the 1/8
  feature to 1/16 (320), 1/32 (640) and 1/64 (1280);
* ``occlusions`` and ``zero_outs``, one per scale (``"8"``, ``"16"``, ``"32"``, ``"64"``): the
  occlusion module mends what forward warping leaves empty, then a 1x1 convolution;
* ``controlnet_down_blocks`` (12 1x1 convolutions) and ``controlnet_mid_block``: the residuals
  handed to the UNet.

How these are wired in the forward pass (the order of injections, which residuals are captured
before or after them, frame 0 unwarped) is :mod:`faceshot_mofa.landmark_adapter`'s job, which
also loads the released files; this module fixes the *layout*, which the meta-device test
compares with the released files.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: Scales (downsampling factors) at which warped features are injected.
SCALES = (8, 16, 32, 64)


@dataclass(frozen=True)
class AdapterConfig:
    """The released adapter's configuration (``ldmk_controlnet``; also the class defaults)."""

    in_channels: int = 8
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    num_attention_heads: tuple[int, ...] = (5, 10, 10, 20)
    layers_per_block: int = 2
    cross_attention_dim: int = 1024
    addition_time_embed_dim: int = 256
    projection_class_embeddings_input_dim: int = 768
    num_frames: int = 25
    conditioning_channels: int = 3
    cond_embedding_channels: tuple[int, ...] = (16, 32, 96, 256)
    ldmk_embedding_channels: tuple[int, ...] = (16, 32, 64, 128)
    #: The occlusion hourglasses' encoder widths; the decoder ends at the first one's half.
    hourglass_channels: tuple[int, ...] = (128, 256, 512)

    def scale_channels(self) -> dict[int, int]:
        """Feature channels at each injection scale: 1/8 and 1/16 at the first block's width."""
        c = self.block_out_channels
        return {8: c[0], 16: c[0], 32: c[1], 64: c[2]}


class _Conv(nn.Module):
    """A 3x3 convolution (stride 1) under the name ``conv``, as the hourglass stores it."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class _Encoder(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        chans = (cin, *widths)
        self.down_blocks = nn.ModuleList(_Conv(a, b) for a, b in itertools.pairwise(chans))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _Decoder(nn.Module):
    """Each block after the first sees ``[encoder's matching output, previous output]``.

    The order of that concatenation matters for the released weights (both halves have the
    same width at the 512 -> 256 step, so a swapped order would still load but compute
    something else): upstream puts the encoder's skip first.
    """

    def __init__(self, widths: tuple[int, ...], out: int) -> None:
        super().__init__()
        deepest, *rest = widths[::-1]  # 512, 256, 128
        ins = [deepest] + [2 * w for w in rest]  # 512, 512, 256
        outs = [*rest, out]  # 256, 128, 64
        self.up_blocks = nn.ModuleList(_Conv(a, b) for a, b in zip(ins, outs, strict=True))

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for k, block in enumerate(self.up_blocks):
            x = block(x)
            if k < len(self.up_blocks) - 1:
                x = torch.cat([skips[-2 - k], x], dim=1)
        return x


class Hourglass(nn.Module):
    """Encoder-decoder without spatial downsampling: ``cin -> 128 -> 256 -> 512 -> ... -> 64``."""

    def __init__(self, cin: int, widths: tuple[int, ...] = (128, 256, 512), out: int = 64) -> None:
        super().__init__()
        self.encoder = _Encoder(cin, widths)
        self.decoder = _Decoder(widths, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)[1:])


class Occlusion(nn.Module):
    """Mends a forward-warped feature: ``warped * mask + matting * (1 - mask)``.

    Input of the hourglass: ``[reference feature, flow / scale, warped feature]`` (``2 C + 2``
    channels); ``matting_mask`` (7x7, sigmoid) says where the warped feature is trusted and
    ``matting`` (7x7) paints the rest.
    """

    def __init__(self, channels: int, widths: tuple[int, ...] = (128, 256, 512)) -> None:
        super().__init__()
        out = widths[0] // 2
        self.hourglass = Hourglass(2 * channels + 2, widths, out)
        self.matting_mask = nn.Conv2d(out, 1, 7, padding=3)
        self.matting = nn.Conv2d(out, channels, 7, padding=3)

    def forward(
        self, reference: torch.Tensor, flow: torch.Tensor, warped: torch.Tensor
    ) -> torch.Tensor:
        h = self.hourglass(torch.cat([reference, flow, warped], dim=1))
        mask = torch.sigmoid(self.matting_mask(h))
        return warped * mask + self.matting(h) * (1 - mask)


class _Stride2(nn.Module):
    """A stride-2 3x3 convolution followed by SiLU (upstream activates every encoder layer)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cin, cout, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(self.conv_in(x))


class FlowEncoder(nn.Module):
    """The 1/8 reference feature carried to 1/16, 1/32 and 1/64 (stride-2 conv + SiLU each)."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(_Stride2(a, b) for a, b in itertools.pairwise(channels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for enc in self.encoders:
            outs.append(enc(outs[-1]))
        return outs


def _one_by_one(channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 1)


class LandmarkAdapterModules(nn.Module):
    """Every module of the released adapter, under the released names (see the module docs)."""

    def __init__(self, config: AdapterConfig | None = None) -> None:
        super().__init__()
        from diffusers import UNetSpatioTemporalConditionModel
        from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding

        cfg = config or AdapterConfig()
        self.config = cfg
        unet: Any = UNetSpatioTemporalConditionModel(
            in_channels=cfg.in_channels,
            block_out_channels=cfg.block_out_channels,
            num_attention_heads=cfg.num_attention_heads,
            layers_per_block=cfg.layers_per_block,
            cross_attention_dim=cfg.cross_attention_dim,
            addition_time_embed_dim=cfg.addition_time_embed_dim,
            projection_class_embeddings_input_dim=cfg.projection_class_embeddings_input_dim,
            num_frames=cfg.num_frames,
        )
        self.conv_in = unet.conv_in
        self.time_proj = unet.time_proj
        self.time_embedding = unet.time_embedding
        self.add_time_proj = unet.add_time_proj
        self.add_embedding = unet.add_embedding
        self.down_blocks = unet.down_blocks
        self.mid_block = unet.mid_block
        del unet

        first = cfg.block_out_channels[0]
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            first, cfg.conditioning_channels, cfg.cond_embedding_channels
        )
        self.controlnet_ldmk_embedding = ControlNetConditioningEmbedding(
            first, cfg.conditioning_channels, cfg.ldmk_embedding_channels
        )
        scale = cfg.scale_channels()
        self.flow_encoder = FlowEncoder(tuple(scale[s] for s in SCALES))
        self.occlusions = nn.ModuleDict(
            {str(s): Occlusion(scale[s], cfg.hourglass_channels) for s in SCALES}
        )
        self.zero_outs = nn.ModuleDict({str(s): _one_by_one(scale[s]) for s in SCALES})

        residual_channels = [first]
        for k, width in enumerate(cfg.block_out_channels):
            residual_channels += [width] * cfg.layers_per_block
            if k < len(cfg.block_out_channels) - 1:
                residual_channels.append(width)  # the downsampler's output
        self.controlnet_down_blocks = nn.ModuleList(_one_by_one(c) for c in residual_channels)
        self.controlnet_mid_block = _one_by_one(cfg.block_out_channels[-1])
