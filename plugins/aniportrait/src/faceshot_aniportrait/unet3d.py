"""AniPortrait's denoising UNet: SD 1.5 per frame, 21 motion modules, pose features added.

Layout: exactly the released ``denoising_unet.pth`` (686 tensors of the SD 1.5 UNet, loaded
from AniPortrait's file) merged with ``motion_module.pth`` (588 tensors, 42 of them the
``pos_encoder.pe`` buffers): 1274 tensors.  Upstream builds it as ``UNet3DConditionModel`` from
SD 1.5's config (down: CrossAttnDownBlock3D x3 + DownBlock3D; mid: UNetMidBlock3DCrossAttn; up:
UpBlock3D + CrossAttnUpBlock3D x3; ``attention_head_dim: 8``, which diffusers reads as 8 heads)
with inflated group norm and Vanilla motion modules at every resolution and in the mid block.

Forward (upstream's ``UNet3DConditionModel.forward`` with ``pose_cond_fea``):

1. ``conv_in``, then pose feature 0 is added *before* the first skip is taken, so the up path
   sees it;
2. each down block runs, its skips are kept, *then* pose feature ``k + 1`` is added to the main
   stream only: the skips of down block ``k`` carry the tensors from before that addition;
3. mid block, up blocks (consuming skips last-first), GroupNorm, SiLU, ``conv_out``.

Everything except the motion modules treats frames independently (see
:mod:`faceshot_aniportrait.blocks3d` for the ``[B * F, C, H, W]`` layout used inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from faceshot_aniportrait.blocks3d import BlockSpec, DownBlock3D, MidBlock3D, UpBlock3D
from faceshot_aniportrait.motion_module import MAX_FRAMES


@dataclass(frozen=True)
class DenoisingUNetConfig:
    """The released model's configuration (the defaults); :func:`tiny_denoising_config` for tests.

    Every down block but the last has cross-attention; the up path mirrors it (the first up
    block has none).
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    #: Heads of the spatial transformers (SD 1.5's ``attention_head_dim: 8`` means 8 heads).
    attention_heads: int = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    #: Down block ``i`` (and the up block at the same level) has motion modules when ``2**i``
    #: is listed here.
    motion_module_resolutions: tuple[int, ...] = (1, 2, 4, 8)
    motion_module_mid_block: bool = True
    motion_heads: int = 8
    motion_layers: int = 1
    motion_attentions: int = 2
    motion_norm_groups: int = 32
    #: Length of the motion modules' position code: the longest window.
    motion_max_frames: int = MAX_FRAMES

    def block_spec(self) -> BlockSpec:
        """What the blocks share (time-embedding width = 4 x the first block's width)."""
        return BlockSpec(
            temb_channels=4 * self.block_out_channels[0],
            cross_attention_dim=self.cross_attention_dim,
            attention_heads=self.attention_heads,
            norm_num_groups=self.norm_num_groups,
            norm_eps=self.norm_eps,
            motion_heads=self.motion_heads,
            motion_layers=self.motion_layers,
            motion_attentions=self.motion_attentions,
            motion_norm_groups=self.motion_norm_groups,
            motion_max_frames=self.motion_max_frames,
        )

    def spatial_unet_kwargs(self) -> dict[str, object]:
        """Arguments for diffusers' ``UNet2DConditionModel`` with the same 2D layers.

        That model (SD 1.5 at the defaults) holds exactly this UNet's non-motion keys, and
        with the motion modules switched off the two compute the same thing frame by frame;
        AniPortrait's reference UNet has this shape too.
        """
        n = len(self.block_out_channels)
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "down_block_types": ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
            "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "attention_head_dim": self.attention_heads,
            "cross_attention_dim": self.cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
            "flip_sin_to_cos": self.flip_sin_to_cos,
            "freq_shift": self.freq_shift,
        }


def tiny_denoising_config() -> DenoisingUNetConfig:
    """The released structure (4 levels, 2 layers, 21 motion modules, 16 transformer blocks)
    at widths 32/64/128/128, for tests that run.

    Its 2D layers match :func:`faceshot_aniportrait.reference_unet.tiny_unet_config` (the
    tiny reference UNet), so the two pair for reference attention.
    """
    return DenoisingUNetConfig(
        block_out_channels=(32, 64, 128, 128),
        attention_heads=2,
        cross_attention_dim=16,
        norm_num_groups=8,
        motion_heads=4,
        motion_norm_groups=8,
    )


class DenoisingUNet3D(nn.Module):
    """``forward(sample [B, C, F, h, w], timestep, context [B, L, D], pose_features)``.

    Returns the model output (AniPortrait: a v-prediction) ``[B, out_channels, F, h, w]``.
    ``F`` is at most ``config.motion_max_frames`` (32).  Children are registered in
    upstream's order (down, up, mid: the module order upstream's reference-attention pairing
    sorts from), so that pairing and :mod:`faceshot_aniportrait.reference_attention`'s
    pairing by path coincide.
    """

    def __init__(self, config: DenoisingUNetConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or DenoisingUNetConfig()
        spec = cfg.block_spec()
        widths = cfg.block_out_channels
        levels = len(widths)
        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(widths[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        self.time_embedding = TimestepEmbedding(widths[0], spec.temb_channels)

        self.down_blocks = nn.ModuleList(
            DownBlock3D(
                spec,
                widths[max(i - 1, 0)],
                widths[i],
                cfg.layers_per_block,
                cross_attention=i < levels - 1,
                motion=2**i in cfg.motion_module_resolutions,
                downsample=i < levels - 1,
            )
            for i in range(levels)
        )
        rev = widths[::-1]
        self.up_blocks = nn.ModuleList(
            UpBlock3D(
                spec,
                rev[max(i - 1, 0)],
                rev[i],
                rev[min(i + 1, levels - 1)],
                cfg.layers_per_block + 1,
                cross_attention=i > 0,
                motion=2 ** (levels - 1 - i) in cfg.motion_module_resolutions,
                upsample=i < levels - 1,
            )
            for i in range(levels)
        )
        self.mid_block = MidBlock3D(spec, widths[-1], motion=cfg.motion_module_mid_block)

        self.conv_norm_out = nn.GroupNorm(cfg.norm_num_groups, widths[0], eps=cfg.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(widths[0], cfg.out_channels, kernel_size=3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        pose_features: list[torch.Tensor] | tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """Denoise a window of latents.

        ``timestep``: a number, a 0-d tensor or one per batch item.  ``encoder_hidden_states``
        (AniPortrait: CLIP image embeddings ``[B, 1, 768]``, zeros for the unconditional half)
        is given to every frame of its batch item; a batch of 1 is shared.  ``pose_features``:
        the PoseGuider's five maps, each either ``[B, C, F, h_k, w_k]`` or frames stacked
        ``[B * F, C, h_k, w_k]``; a batch of 1 (``[1, C, F, ...]`` or ``[F, C, ...]``) is
        shared by every batch item (as both halves under classifier-free guidance).
        """
        batch, channels, frames, height, width = sample.shape
        if frames > self.config.motion_max_frames:
            raise ValueError(
                f"{frames} frames in one window; the motion modules take at most "
                f"{self.config.motion_max_frames} (use context windows)"
            )
        x = sample.transpose(1, 2).reshape(batch * frames, channels, height, width)
        temb = self._time_embedding(timestep, batch, sample.device).repeat_interleave(frames, 0)
        context = encoder_hidden_states.expand(batch, *encoder_hidden_states.shape[1:])
        context = context.repeat_interleave(frames, 0)
        poses = [_frames_first(p, batch, frames) for p in pose_features or ()]
        if poses and len(poses) != len(self.down_blocks) + 1:
            raise ValueError(f"{len(poses)} pose features, expected {len(self.down_blocks) + 1}")

        x = self.conv_in(x)
        if poses:
            x = x + poses[0]
        skips = [x]
        for k, down in enumerate(self.down_blocks):
            x, block_skips = down(x, temb, context, frames)
            skips.extend(block_skips)
            if poses:
                x = x + poses[k + 1]  # after the skips were taken: they stay without it

        x = self.mid_block(x, temb, context, frames)

        n_up = len(self.up_blocks) - 1
        forward_size = height % 2**n_up != 0 or width % 2**n_up != 0
        for k, up in enumerate(cast(list[UpBlock3D], list(self.up_blocks))):
            n = len(up.resnets)
            block_skips, skips = skips[-n:], skips[:-n]
            size = tuple(skips[-1].shape[-2:]) if forward_size and k < n_up else None
            x = up(x, block_skips, temb, context, frames, size)

        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(batch, frames, *x.shape[1:]).transpose(1, 2)

    def _time_embedding(
        self, timestep: torch.Tensor | float, batch: int, device: torch.device
    ) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=device)
        if not t.is_floating_point():
            t = t.long()
        t = t.reshape(-1).expand(batch)
        # The sinusoidal projection is float32; the MLP runs in the weights' dtype.
        emb = self.time_proj(t).to(self.time_embedding.linear_1.weight.dtype)
        return cast(torch.Tensor, self.time_embedding(emb))


def _frames_first(feature: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """A pose feature in the ``[B * F, C, h, w]`` layout (frames batch-major)."""
    if feature.ndim == 5:  # [B or 1, C, F, h, w]
        if feature.shape[2] != frames:
            raise ValueError(f"pose feature has {feature.shape[2]} frames, sample has {frames}")
        b, c, f, h, w = feature.shape
        feature = feature.transpose(1, 2).reshape(b * f, c, h, w)
    if feature.shape[0] == frames and batch > 1:
        feature = feature.repeat(batch, 1, 1, 1)  # one set of frames for every batch item
    if feature.shape[0] != batch * frames:
        raise ValueError(
            f"pose feature batch {feature.shape[0]} fits neither {frames} nor "
            f"{batch} x {frames} frames"
        )
    return feature
