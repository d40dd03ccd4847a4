"""AniPortrait's motion modules: attention across the frames of a window, per pixel.

The denoising UNet is Stable Diffusion 1.5 applied to every frame separately, except for 21
motion modules (AnimateDiff's "Vanilla" type) that mix information between frames.  Each one is
a residual temporal transformer over feature maps laid out ``[B * F, C, H, W]`` (frames
batch-major, the layout the whole UNet runs in):

* ``temporal_transformer.norm``: a GroupNorm (32 groups, eps 1e-6) applied to each frame on its
  own (upstream reshapes to ``(b f) c h w`` before normalising; diffusers' own
  ``AnimateDiffTransformer3D`` normalises over all frames together instead, which is why it is
  not reused here);
* ``proj_in`` (Linear), one ``transformer_blocks.0`` with two temporal self-attentions
  (``attention_blocks.0/1`` after LayerNorms ``norms.0/1``) and a GEGLU feed-forward (``ff``
  after ``ff_norm``), ``proj_out`` (Linear), plus the input (residual);
* every attention sees, for each pixel, the sequence of that pixel's ``F`` frames; a fixed
  sinusoidal position code (``pos_encoder.pe``, ``[1, 32, C]``, stored in the checkpoint as a
  persistent buffer) is added to the normalised tokens before the query/key/value projections.
  The code has 32 rows, so a window holds at most :data:`MAX_FRAMES` frames.

Names follow the released ``motion_module.pth`` exactly (checked by the layout test).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

#: Rows of the released position code: the longest window the motion modules accept.
MAX_FRAMES = 32


def sinusoidal_positions(length: int, channels: int) -> torch.Tensor:
    """The transformer sine/cosine code ``[1, length, channels]``: sines even, cosines odd.

    Computed in float32 from an integer position times ``10000 ** (-2i / channels)`` as
    upstream does, so that a freshly built module equals one loaded from the released files
    (which store the same numbers).
    """
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, channels, 2) * (-math.log(10000.0) / channels))
    code = torch.zeros(1, length, channels)
    code[0, :, 0::2] = torch.sin(position * frequency)
    code[0, :, 1::2] = torch.cos(position * frequency)
    return code


class PositionalEncoding(nn.Module):
    """Adds the first ``F`` rows of the sinusoidal code to ``[N, F, C]`` token sequences."""

    pe: torch.Tensor

    def __init__(self, channels: int, max_frames: int = MAX_FRAMES) -> None:
        super().__init__()
        # Persistent: the released files carry ``pos_encoder.pe`` (42 of the 588 tensors).
        self.register_buffer("pe", sinusoidal_positions(max_frames, channels))

    @property
    def max_frames(self) -> int:
        """How many positions the code has (32 in the released model)."""
        return int(self.pe.shape[1])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        frames = tokens.shape[1]
        if frames > self.max_frames:
            raise ValueError(
                f"{frames} frames in one window; the motion modules' position code has "
                f"{self.max_frames} rows (use context windows of at most {self.max_frames})"
            )
        return tokens + self.pe[:, :frames].to(tokens.dtype)


class TemporalSelfAttention(Attention):
    """Diffusers' ``Attention`` (``to_q/k/v`` without bias, ``to_out.0``) plus ``pos_encoder``.

    ``forward`` is diffusers' own (any attention processor applies); :meth:`over_frames` is
    what the motion module calls: it regroups ``[B * F, D, C]`` frame-major tokens into one
    length-``F`` sequence per pixel, adds the position code and attends.
    """

    def __init__(self, channels: int, heads: int, max_frames: int = MAX_FRAMES) -> None:
        super().__init__(query_dim=channels, heads=heads, dim_head=channels // heads, bias=False)
        self.pos_encoder = PositionalEncoding(channels, max_frames)

    def over_frames(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        """``[B * F, D, C]`` -> attention over the ``F`` frames of each of the ``D`` pixels."""
        bf, pixels, channels = tokens.shape
        batch = bf // frames
        seq = tokens.reshape(batch, frames, pixels, channels).transpose(1, 2)
        seq = self.pos_encoder(seq.reshape(batch * pixels, frames, channels))
        out: torch.Tensor = self(seq)
        return out.reshape(batch, pixels, frames, channels).transpose(1, 2).reshape(bf, pixels, -1)


class TemporalTransformerBlock(nn.Module):
    """Pre-norm residual block: temporal self-attentions (``attention_blocks``) then GEGLU FF."""

    def __init__(
        self, channels: int, heads: int, num_attentions: int = 2, max_frames: int = MAX_FRAMES
    ) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalSelfAttention(channels, heads, max_frames) for _ in range(num_attentions)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(num_attentions))
        self.ff = FeedForward(channels, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(channels)

    def forward(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            tokens = (
                cast(TemporalSelfAttention, attention).over_frames(norm(tokens), frames) + tokens
            )
        out: torch.Tensor = self.ff(self.ff_norm(tokens)) + tokens
        return out


class TemporalTransformer(nn.Module):
    """Per-frame GroupNorm -> ``proj_in`` -> temporal blocks -> ``proj_out``, plus the input."""

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        num_layers: int = 1,
        num_attentions: int = 2,
        norm_groups: int = 32,
        max_frames: int = MAX_FRAMES,
    ) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(channels, heads, num_attentions, max_frames)
            for _ in range(num_layers)
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        bf, channels, height, width = x.shape
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(bf, height * width, channels)
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, frames)
        tokens = self.proj_out(tokens)
        return tokens.reshape(bf, height, width, channels).permute(0, 3, 1, 2) + x


class MotionModule(nn.Module):
    """One of the UNet's 21 motion modules (upstream ``VanillaTemporalModule``).

    Only the wrapper name ``temporal_transformer`` is added, for the checkpoint's key names.
    ``forward(x [B * F, C, H, W], frames)`` returns the same shape; with ``frames == 1`` the
    attention has a single key, so each attention returns its value projection of that token.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        num_layers: int = 1,
        num_attentions: int = 2,
        norm_groups: int = 32,
        max_frames: int = MAX_FRAMES,
    ) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels, heads, num_layers, num_attentions, norm_groups, max_frames
        )

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        out: torch.Tensor = self.temporal_transformer(x, frames)
        return out
