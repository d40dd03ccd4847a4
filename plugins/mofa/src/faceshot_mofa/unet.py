"""The SVD UNet's forward pass with the adapter's residuals, added the way MOFA was trained.

diffusers' ``UNetSpatioTemporalConditionModel`` takes no ControlNet residuals, and MOFA's own
UNet does something a plain ControlNet does not: inside the down-block loop it adds *every*
residual collected so far after *every* block.  The skip connections of the first block (the
``conv_in`` output and block 0's three outputs, residuals 0-3) therefore receive their residual
4 times, residuals 4-6 3 times, 7-9 twice and 10-11 once; the mid-block residual is added once.
The released adapter weights were trained with this, and a UNet that adds each residual once
gives a visibly different result (the upstream comparison measured a difference of 0.86 of the
output's largest magnitude), so it is reproduced here on purpose.  The residuals only touch the
skip connections, never the features flowing down.

:func:`unet_forward` runs the stock diffusers blocks of a ``UNetSpatioTemporalConditionModel``
(time and added-time embeddings, down, mid and up blocks, output head) in their usual order;
without residuals it returns exactly what the model's own ``forward`` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: How many times residual ``i`` of the 12 is added, for the released 4-block layout.
RESIDUAL_REPEATS = (4, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1)


def _block(block: Any, cross: torch.Tensor, **kwargs: Any) -> Any:
    if getattr(block, "has_cross_attention", False):
        kwargs["encoder_hidden_states"] = cross
    return block(**kwargs)


def unet_forward(
    unet: Any,
    sample: torch.Tensor,
    timestep: torch.Tensor | float,
    encoder_hidden_states: torch.Tensor,
    added_time_ids: torch.Tensor,
    down_residuals: Sequence[torch.Tensor] | None = None,
    mid_residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """Noise prediction ``[B, F, C, H, W]`` of ``unet`` for ``sample`` ``[B, F, C_in, H, W]``.

    ``down_residuals`` (one per skip connection, ``[B * F, C, h, w]``) and ``mid_residual`` are
    the adapter's outputs; see the module docstring for how often each is added.
    """
    batch, frames = sample.shape[:2]
    t = torch.as_tensor(timestep, device=sample.device)
    t = t.reshape(-1)[:1].expand(batch) if t.numel() == 1 else t
    emb = unet.time_embedding(unet.time_proj(t).to(sample.dtype))
    added = unet.add_time_proj(added_time_ids.flatten()).reshape(batch, -1).to(emb.dtype)
    emb = (emb + unet.add_embedding(added)).repeat_interleave(frames, dim=0)
    cross = encoder_hidden_states.repeat_interleave(frames, dim=0)
    indicator = torch.zeros(batch, frames, dtype=sample.dtype, device=sample.device)

    x = unet.conv_in(sample.flatten(0, 1))
    skips = [x]
    for block in unet.down_blocks:
        x, res = _block(block, cross, hidden_states=x, temb=emb, image_only_indicator=indicator)
        skips.extend(res)
        if down_residuals is not None:  # the trained behaviour: all residuals so far, again
            skips = [s + r for s, r in zip(skips, down_residuals, strict=False)]
    x = _block(unet.mid_block, cross, hidden_states=x, temb=emb, image_only_indicator=indicator)
    if mid_residual is not None:
        x = x + mid_residual

    factor = 2**unet.num_upsamplers
    forward_size = any(s % factor for s in sample.shape[-2:])
    for k, block in enumerate(unet.up_blocks):
        n = len(block.resnets)
        res, skips = tuple(skips[-n:]), skips[:-n]
        size = skips[-1].shape[2:] if forward_size and k < len(unet.up_blocks) - 1 else None
        x = _block(block, cross, hidden_states=x, temb=emb, res_hidden_states_tuple=res,
                   image_only_indicator=indicator, upsample_size=size)  # fmt: skip
    x = unet.conv_out(unet.conv_act(unet.conv_norm_out(x)))
    return x.reshape(batch, frames, *x.shape[1:])
