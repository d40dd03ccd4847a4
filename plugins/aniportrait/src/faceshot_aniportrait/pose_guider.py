"""AniPortrait's PoseGuider, laid out exactly as the released ``pose_guider.pth``.

The PoseGuider turns pose images (face-mesh lines on black, values in [-1, 1]) into five
feature maps that the denoising UNet adds to its main stream: after ``conv_in`` (320 channels
at 1/8 of the image) and after down blocks 0..3 (320 at 1/16, 640 at 1/32, 1280 at 1/64 twice).

Structure (the released ``noise_latent_channels=320, use_ca=True`` model, 184 tensors,
167,518,523 parameters):

* ``conv_layers``: eight Conv+BatchNorm+ReLU stages, 3->3->16->16->32->32->64->64->128, the
  three 4x4 convolutions with stride 2 (1/8), then ``final_proj`` (1x1 to 320) times the
  learned scalar ``scale``: feature 0;
* ``conv_layers_1..3``: two Conv+BN+ReLU stages each, the second with stride 2 (320, 640,
  1280 channels), ``conv_layers_4`` one stage at 1280 without striding;
* ``cross_attn1..4`` after each of them: a Transformer2D-style block (GroupNorm, 1x1 conv in,
  one transformer block with 16 heads of 88, 1x1 conv out, residual).  Despite the name it
  only self-attends: upstream passes a reference-pose feature to it, but its blocks have no
  cross-attention and ignore it, so the reference-pose branch is dropped here (it changes no
  output).

BatchNorm: the released pipeline never puts the PoseGuider in eval mode, so its BatchNorms
normalise with the statistics of the frames given in each call (one context window, twice
under classifier-free guidance, which leaves the statistics unchanged), and the running
statistics stored in the file are unused.  ``batch_statistics=True`` (the default) reproduces
that without touching the module's buffers; ``False`` uses the stored running statistics
(per-frame features independent of the window, but not what the weights were used with).
Either way the module's ``train()``/``eval()`` mode plays no part.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from diffusers.models.attention import BasicTransformerBlock
from torch import nn
from torch.nn import functional

#: Widths of the image stem: 3 channels in, 128 before ``final_proj``.
STEM_CHANNELS = (3, 16, 32, 64, 128)


@dataclass(frozen=True)
class PoseGuiderConfig:
    """The released PoseGuider's widths (the defaults); :meth:`tiny` for fast tests."""

    #: ``noise_latent_channels``: width of feature 0 and 1; features 2-4 have 2x and 4x.
    latent_channels: int = 320
    num_attention_heads: int = 16
    attention_head_dim: int = 88
    #: Groups of the transformer blocks' GroupNorm (must divide every feature width).
    norm_num_groups: int = 32

    @classmethod
    def tiny(cls) -> PoseGuiderConfig:
        """Same key names, a few thousand parameters per block: for tests."""
        return cls(
            latent_channels=16, num_attention_heads=2, attention_head_dim=4, norm_num_groups=4
        )

    def feature_channels(self) -> tuple[int, int, int, int, int]:
        """Channels of the five outputs, in order."""
        c = self.latent_channels
        return (c, c, 2 * c, 4 * c, 4 * c)


def _stage(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    """Conv, BatchNorm, ReLU: three entries, so ``nn.Sequential`` indices match the file."""
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class SelfAttentionTransformer2D(nn.Module):
    """A Transformer2D-style block whose one transformer block only self-attends.

    Key names and maths of diffusers' ``Transformer2DModel`` with convolutional projections
    (GroupNorm eps 1e-6, 1x1 ``proj_in``/``proj_out``, residual around all), built from
    diffusers' ``BasicTransformerBlock`` without cross-attention (so no ``attn2``/``norm2``),
    GEGLU feed-forward.
    """

    def __init__(self, channels: int, heads: int, head_dim: int, groups: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, head_dim, activation_fn="geglu")]
        )
        self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x))
        inner = tokens.shape[1]
        tokens = tokens.permute(0, 2, 3, 1).reshape(n, h * w, inner)
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = tokens.reshape(n, h, w, inner).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(tokens) + x


class PoseGuider(nn.Module):
    """Pose images ``[N, 3, H, W]`` in [-1, 1] -> five feature maps for the denoising UNet.

    ``batch_statistics`` is the default BatchNorm behaviour of :meth:`forward` (see the module
    docstring); a call may override it.  Build on the meta device and load with
    :func:`faceshot_aniportrait.checkpoints.load_pose_guider`.
    """

    def __init__(
        self, config: PoseGuiderConfig | None = None, batch_statistics: bool = True
    ) -> None:
        super().__init__()
        self.config = cfg = config or PoseGuiderConfig()
        self.batch_statistics = batch_statistics
        c = cfg.latent_channels
        stem: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(STEM_CHANNELS)):
            stem += _stage(cin, cin)
            stem += _stage(cin, cout, 4, 2) if i < 3 else _stage(cin, cout)
        self.conv_layers = nn.Sequential(*stem)
        self.final_proj = nn.Conv2d(STEM_CHANNELS[-1], c, kernel_size=1)
        self.conv_layers_1 = nn.Sequential(*_stage(c, c), *_stage(c, c, stride=2))
        self.conv_layers_2 = nn.Sequential(*_stage(c, c), *_stage(c, 2 * c, stride=2))
        self.conv_layers_3 = nn.Sequential(*_stage(2 * c, 2 * c), *_stage(2 * c, 4 * c, stride=2))
        self.conv_layers_4 = nn.Sequential(*_stage(4 * c, 4 * c))

        def block(channels: int) -> SelfAttentionTransformer2D:
            return SelfAttentionTransformer2D(
                channels, cfg.num_attention_heads, cfg.attention_head_dim, cfg.norm_num_groups
            )

        self.cross_attn1 = block(c)
        self.cross_attn2 = block(2 * c)
        self.cross_attn3 = block(4 * c)
        self.cross_attn4 = block(4 * c)
        self.scale = nn.Parameter(torch.full((1,), 2.0))

    def _run(self, stages: nn.Sequential, x: torch.Tensor, batch_statistics: bool) -> torch.Tensor:
        """``stages`` applied in order, BatchNorms with batch or running statistics.

        ``batch_norm`` with ``training=True`` and no running buffers normalises with the
        batch's mean and biased variance, as a BatchNorm in train mode does, and updates
        nothing; with ``training=False`` it uses the stored running statistics.
        """
        for layer in stages:
            if not isinstance(layer, nn.BatchNorm2d):
                x = layer(x)
            elif batch_statistics:
                if x.numel() // x.shape[1] < 2:
                    raise ValueError(
                        f"PoseGuider batch statistics need more than one value per channel, "
                        f"got a batch of {x.shape[0]} at {x.shape[2]}x{x.shape[3]}: give more "
                        "frames or larger pose images (or use running statistics)"
                    )
                x = functional.batch_norm(
                    x, None, None, layer.weight, layer.bias, True, 0.0, layer.eps
                )
            else:
                x = functional.batch_norm(
                    x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                    False, 0.0, layer.eps,
                )  # fmt: skip
        return x

    def forward(
        self, pose: torch.Tensor, *, batch_statistics: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Five features ``[N, C, h, w]``: (c @ 1/8, c @ 1/16, 2c @ 1/32, 4c @ 1/64, 4c @ 1/64).

        ``pose``: ``[N, 3, H, W]`` in [-1, 1] (cast to the weights' dtype), all frames of one
        context window in one call when ``batch_statistics`` holds, because each frame's
        features then depend on the others'.  Feature 0 is ``final_proj`` times ``scale``;
        each later feature is the previous one through ``conv_layers_k`` and ``cross_attn_k``.
        (Upstream returns the same tensors shaped ``[b, c, f, h, w]``; frames stay in the
        batch dimension here.)
        """
        if pose.ndim != 4 or pose.shape[1] != 3:
            raise ValueError(f"PoseGuider expects pose images [N, 3, H, W], got {list(pose.shape)}")
        use_batch = self.batch_statistics if batch_statistics is None else batch_statistics
        x = self._run(self.conv_layers, pose.to(self.final_proj.weight.dtype), use_batch)
        x = self.final_proj(x) * self.scale
        features = [x]
        for convs, attention in (
            (self.conv_layers_1, self.cross_attn1),
            (self.conv_layers_2, self.cross_attn2),
            (self.conv_layers_3, self.cross_attn3),
            (self.conv_layers_4, self.cross_attn4),
        ):
            x = attention(self._run(convs, x, use_batch))
            features.append(x)
        f0, f1, f2, f3, f4 = features
        return f0, f1, f2, f3, f4
