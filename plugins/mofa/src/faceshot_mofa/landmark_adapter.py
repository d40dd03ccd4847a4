"""The landmark adapter's forward pass.

The adapter (upstream ``FlowControlNet``) is a ControlNet whose encoder is the SVD UNet's down
path.  Besides the noisy latents it sees three conditions:

* the **reference image**, embedded to the first block's width at 1/8 and carried to 1/16,
  1/32 and 1/64 by ``flow_encoder``.  Every frame m >= 1 gets these features *forward-warped*
  along its dense flow (frames 1..F-1 relative to frame 0), mended by the scale's occlusion
  module and passed through the scale's ``zero_outs`` convolution.  Frame 0 *is* the reference,
  so it gets the raw features: no warp, no occlusion module, no ``zero_outs``;
* the **landmark images** (one per frame), embedded to the first block's width at 1/8 and
  subsampled once by 2 for 1/16 (upstream also makes a 1/32 copy that it never uses);
* the usual time step, CLIP embedding and added time ids.

Where the features enter (checked by running the upstream code; see the project's MOFA notes):
after ``conv_in`` the 1/8 warped + 1/8 landmark features; after down block 0 the 1/16 warped +
1/16 landmark; after block 1 the 1/32 warped; after blocks 2 and 3 the 1/64 warped each; and
before the mid block the 1/64 warped once more.  The residuals handed to the UNet are the
``conv_in`` output *after* its injection, then each block's own outputs; a block's last output
is captured *before* that block's injection.  All of this is odd but the released weights were
trained with it, so it is reproduced exactly.

Spatial subsampling takes every s-th pixel (``x[..., ::s, ::s]``), which is what upstream's
nearest ``interpolate(scale_factor=1/s)`` picks when the size is a multiple of s, and which
also yields the ceil-sized maps the stride-2 convolutions produce for other sizes.

Reading and writing its weights folder is :mod:`faceshot_mofa.adapter_files`.
"""

from __future__ import annotations

from typing import Any

import torch

from faceshot_mofa.adapter import SCALES, AdapterConfig, LandmarkAdapterModules
from faceshot_mofa.splatting import splat_average

#: The only block layout the adapter supports (SVD's; the injections are tied to it).
DOWN_BLOCK_TYPES = (
    "CrossAttnDownBlockSpatioTemporal",
    "CrossAttnDownBlockSpatioTemporal",
    "CrossAttnDownBlockSpatioTemporal",
    "DownBlockSpatioTemporal",
)


def tiny_adapter_config() -> AdapterConfig:
    """A small configuration for fast tests, with the released structure (12 residuals).

    The fields that the SVD UNet shares (block widths, heads, cross-attention width, added time
    embedding) are chosen so that a tiny ``UNetSpatioTemporalConditionModel`` built with the
    same values takes this adapter's residuals.  Widths are multiples of 32 because the
    diffusers blocks use 32-group GroupNorm; block 2 and block 3 have the same width because
    the 1/64 feature is injected after both.
    """
    return AdapterConfig(
        block_out_channels=(32, 64, 64, 64),
        num_attention_heads=(2, 4, 4, 4),
        layers_per_block=2,
        cross_attention_dim=32,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        cond_embedding_channels=(8, 8, 16, 16),
        ldmk_embedding_channels=(8, 8, 16, 16),
        hourglass_channels=(16, 32, 64),
    )


def check_config(config: AdapterConfig) -> None:
    """Raise ``ValueError`` unless the forward pass can wire ``config``.

    The injections are tied to SVD's four-block layout: 1/16 features enter after block 0 at
    its width, 1/32 after block 1, 1/64 after blocks 2 and 3 (so those two must share a width)
    and the time ids are three values each embedded to ``addition_time_embed_dim``.
    """
    widths = config.block_out_channels
    if len(widths) != 4 or len(config.num_attention_heads) != 4:
        raise ValueError(f"the adapter needs 4 blocks and 4 head counts, got {config}")
    if widths[2] != widths[3]:
        raise ValueError(f"blocks 2 and 3 must have the same width, got {widths}")
    if config.projection_class_embeddings_input_dim != 3 * config.addition_time_embed_dim:
        raise ValueError(
            "projection_class_embeddings_input_dim must be 3 * addition_time_embed_dim "
            f"(three time ids), got {config.projection_class_embeddings_input_dim} and "
            f"{config.addition_time_embed_dim}"
        )


def _block(block: Any, cross: torch.Tensor, **kwargs: Any) -> Any:
    """Call a diffusers SVD block, passing the CLIP embedding only to blocks that attend to it."""
    if getattr(block, "has_cross_attention", False):
        kwargs["encoder_hidden_states"] = cross
    return block(**kwargs)


class LandmarkAdapter(LandmarkAdapterModules):
    """The landmark adapter with its forward pass; see the module docstring for the wiring."""

    def __init__(self, config: AdapterConfig | None = None) -> None:
        check_config(config or AdapterConfig())
        super().__init__(config)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype; inputs are cast to it (the flow is only cast where it is a
        network input, see :meth:`warped_features`)."""
        return self.conv_in.weight.dtype

    def warped_features(self, reference: torch.Tensor, flow: torch.Tensor) -> list[torch.Tensor]:
        """The reference features for every frame, at 1/8, 1/16, 1/32 and 1/64.

        ``reference`` [B, 3, H, W] in [-1, 1]; ``flow`` [B, F-1, 2, H, W] in pixels of H x W.
        Returns four tensors [B * F, C_s, H_s, W_s] (one batch item's frames consecutive, as
        the UNet flattens them).  Frame 0 carries the raw features; frames 1.. the features
        splatted along their flow (subsampled and divided by the scale, so it is in pixels of
        that scale), mended by ``occlusions[s]`` and projected by ``zero_outs[s]``.

        The splatting runs on the flow as given (float32 accumulation inside
        :func:`~faceshot_mofa.splatting.splat_average`); only the occlusion module's flow input
        is cast to the weights' dtype.  Upstream casts the whole flow to the weights' dtype
        first; dividing by a power of two commutes with that rounding, so the network inputs
        are the same and a float32 flow only makes the splat targets more exact.
        """
        batch, moving = flow.shape[:2]
        base = self.controlnet_cond_embedding(reference.to(self.dtype))
        per_scale: list[torch.Tensor] = []
        for scale, feature in zip(SCALES, self.flow_encoder(base), strict=True):
            if moving == 0:
                per_scale.append(feature)
                continue
            scaled = flow[..., ::scale, ::scale].flatten(0, 1) / scale
            if scaled.shape[-2:] != feature.shape[-2:]:
                raise ValueError(
                    f"flow {tuple(flow.shape)} does not match the 1/{scale} features "
                    f"{tuple(feature.shape)}"
                )
            # One copy of the reference feature per moving frame, as splatting needs a batch.
            source = feature.repeat_interleave(moving, dim=0)
            warped = splat_average(source, scaled)
            mended = self.occlusions[str(scale)](source, scaled.to(self.dtype), warped)
            del warped, source
            moved = self.zero_outs[str(scale)](mended).unflatten(0, (batch, moving))
            del mended
            per_scale.append(torch.cat([feature[:, None], moved], dim=1).flatten(0, 1))
        return per_scale

    def landmark_features(self, landmark_images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Landmark images [B, F, 3, H, W] in [0, 1] -> features [B * F, C, H/8, W/8] and the
        same subsampled by 2 (nearest, as upstream), the two scales that are injected."""
        embedded = self.controlnet_ldmk_embedding(landmark_images.flatten(0, 1).to(self.dtype))
        return embedded, embedded[..., ::2, ::2]

    def _embedding(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        added_time_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Time + added-time embedding [B * F, 4 C0], exactly as the SVD UNet computes it."""
        batch, frames = sample.shape[:2]
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1)[:1].expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        added = self.add_time_proj(added_time_ids.flatten()).reshape(batch, -1).to(emb.dtype)
        return (emb + self.add_embedding(added)).repeat_interleave(frames, dim=0)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        reference: torch.Tensor,
        flow: torch.Tensor,
        landmark_images: torch.Tensor,
        conditioning_scale: float = 1.0,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The adapter's residuals for :func:`faceshot_mofa.unet.unet_forward`.

        ``sample`` [B, F, 8, h, w] (noisy latents ++ image latents, as the UNet gets them);
        ``timestep`` a scalar or [B]; ``encoder_hidden_states`` [B, 1, D]; ``added_time_ids``
        [B, 3]; ``reference`` [B, 3, 8h, 8w] in [-1, 1]; ``flow`` [B, F-1, 2, 8h, 8w], frames
        1..F-1 relative to frame 0 in pixels; ``landmark_images`` [B, F, 3, 8h, 8w] in [0, 1].

        Returns the 12 down residuals [B * F, C_i, h_i, w_i] and the mid residual
        [B * F, C, h/8, w/8], already multiplied by ``conditioning_scale``.
        """
        self._check_inputs(sample, reference, flow, landmark_images)
        batch, frames = sample.shape[:2]
        dtype = self.dtype
        sample = sample.to(dtype)
        emb = self._embedding(sample, timestep, added_time_ids)
        cross = encoder_hidden_states.to(dtype).repeat_interleave(frames, dim=0)
        indicator = torch.zeros(batch, frames, dtype=dtype, device=sample.device)

        warped = self.warped_features(reference, flow)
        landmarks = self.landmark_features(landmark_images)

        # Additions in upstream's order (latent + warped, then + landmark) for identical rounding.
        x = self.conv_in(sample.flatten(0, 1)) + warped[0] + landmarks[0]
        skips = [x]
        for k, block in enumerate(self.down_blocks):
            x, res = _block(block, cross, hidden_states=x, temb=emb, image_only_indicator=indicator)
            skips.extend(res)  # captured before this block's injection
            x = x + warped[min(k + 1, len(warped) - 1)]
            if k == 0:
                x = x + landmarks[1]
        del landmarks
        x = x + warped[-1]  # the 1/64 feature again: the mid block receives it twice
        del warped
        x = _block(self.mid_block, cross, hidden_states=x, temb=emb, image_only_indicator=indicator)

        down = [conv(s) for conv, s in zip(self.controlnet_down_blocks, skips, strict=True)]
        mid = self.controlnet_mid_block(x)
        if conditioning_scale != 1.0:
            down = [d * conditioning_scale for d in down]
            mid = mid * conditioning_scale
        return down, mid

    def _check_inputs(
        self,
        sample: torch.Tensor,
        reference: torch.Tensor,
        flow: torch.Tensor,
        landmark_images: torch.Tensor,
    ) -> None:
        """Shape errors here name the mismatch; deep inside the blocks they would not."""
        if sample.dim() != 5 or sample.shape[2] != self.config.in_channels:
            raise ValueError(
                f"sample must be [B, F, {self.config.in_channels}, h, w], got {tuple(sample.shape)}"
            )
        b, f, _, h, w = sample.shape
        want = {
            "reference": ((b, 3, 8 * h, 8 * w), reference),
            "flow": ((b, f - 1, 2, 8 * h, 8 * w), flow),
            "landmark_images": ((b, f, 3, 8 * h, 8 * w), landmark_images),
        }
        for name, (shape, tensor) in want.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(
                    f"{name} must be {list(shape)} for sample {tuple(sample.shape)}, "
                    f"got {tuple(tensor.shape)}"
                )


# --------------------------------------------------------------------------- weights
