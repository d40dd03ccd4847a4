"""Which CLIP context each temporal attention row sees: per video, or as MOFA's release ran.

In the SVD blocks, each spatial position of each video attends over time with that video's
CLIP image embedding as cross-attention context.  diffusers 0.24, which MOFA's released pipeline
runs on, built that context position-major (``[h * w, batch]``) but paired it with rows laid out
batch-major (``[batch, h * w]``), so row ``r`` got the context of video ``r % batch``.  With
classifier-free guidance (a batch of two: the unconditional branch with a zero embedding, then
the conditional one) both branches thus see the zero embedding at even positions and the real
one at odd positions.  Current diffusers, like Stability's reference code for SVD, pairs each
row with its own video.

The parity check against the upstream code (``tools/mofa_parity``) found this: with the pairing
emulated, every adapter residual and noise prediction matches upstream to ~1e-6 of its range;
without it they differ by 15-48 %.  The backend's ``context_pairing`` option chooses:
``upstream`` (the default: the animator as its authors ran and evaluated it) or ``per_video``
(SVD's own pairing).  The emulation is a forward pre-hook on the temporal transformer blocks of
the modules given, so nothing outside them changes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

ContextPairing = Literal["upstream", "per_video"]


def _upstream_order(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Re-lay the context so that row ``r`` holds the context of video ``r % batch``.

    ``forward(hidden_states, num_frames, encoder_hidden_states=None)``: each argument may come
    by position or by keyword.
    """
    names = ("hidden_states", "num_frames", "encoder_hidden_states")
    given = {**dict(zip(names, args, strict=False)), **kwargs}
    context = given.get("encoder_hidden_states")
    if context is None:
        return args, kwargs
    hidden, frames = given["hidden_states"], given["num_frames"]
    batch = hidden.shape[0] // frames
    if batch < 2:
        return args, kwargs
    positions = hidden.shape[1]
    per_video = context.reshape(batch, positions, *context.shape[1:])[:, 0]
    paired = per_video.repeat(positions, 1, 1)
    if len(args) > 2:
        return (*args[:2], paired, *args[3:]), kwargs
    return args, {**kwargs, "encoder_hidden_states": paired}


def pair_contexts(
    modules: list[nn.Module], pairing: ContextPairing
) -> list[torch.utils.hooks.RemovableHandle]:
    """Install ``pairing`` on each temporal transformer block of ``modules`` (handles undo it)."""
    if pairing == "per_video":
        return []
    if pairing != "upstream":
        raise ValueError(f"unknown context pairing {pairing!r}")
    from diffusers.models.attention import TemporalBasicTransformerBlock

    handles = []
    for module in modules:
        for block in module.modules():
            if isinstance(block, TemporalBasicTransformerBlock):
                handles.append(block.register_forward_pre_hook(_upstream_order, with_kwargs=True))
    return handles
