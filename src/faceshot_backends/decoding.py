"""From latents to RGB frames, a few frames at a time: the last stage of every diffusion backend.

A VAE decoder's activations for a whole clip do not fit in GPU memory (a 512x512 frame needs
hundreds of MB in fp16), so diffusion backends decode ``chunk`` frames per call and stream the
frames out as they come.  Both GPU plugins (MOFA-Video's temporal VAE, AniPortrait's per-frame
SD VAE) share this loop; they differ only in the decode call they pass.  torch is imported only
when frames are decoded, so the backends' class-level descriptions stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from faceshot_core.progress import ProgressSink, StageReporter


def to_uint8_frames(pixels: Any) -> np.ndarray:
    """``[N, 3, H, W]`` pixels in ``[-1, 1]`` (a torch tensor) -> RGB uint8 ``[N, H, W, 3]``."""
    import torch

    images = ((pixels.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy())


def decode_in_chunks(
    decode: Callable[[Any], Any],
    latents: Any,
    chunk: int,
    *,
    scaling_factor: float,
    dtype: Any = None,
    progress: ProgressSink | None = None,
) -> Iterator[np.ndarray]:
    """RGB uint8 frames of ``latents`` ``[T, C, h, w]``, ``chunk`` of them per ``decode`` call.

    ``decode(part)`` maps ``[n, C, h, w]`` latents (already divided by ``scaling_factor`` and
    cast to ``dtype``) to ``[n, 3, H, W]`` pixels in ``[-1, 1]``.  Progress: stage
    ``decoding``, one unit per frame.
    """
    if chunk < 1:
        raise ValueError(f"decode chunk must be at least 1, got {chunk}")
    frames = int(latents.shape[0])
    reporter = StageReporter(progress, "decoding", frames)
    for start in range(0, frames, chunk):
        part = latents[start : start + chunk] / scaling_factor
        if dtype is not None:
            part = part.to(dtype)
        for frame in to_uint8_frames(decode(part)):
            yield frame
            reporter.step()
