"""Temporal windows for backends that generate clips in overlapping chunks.

Video diffusion models see a fixed number of frames at once (MOFA-Video 25, AniPortrait 16).
To animate any length they denoise overlapping windows and average the overlaps (in latent
space, at every step).  :func:`window_spans` is the schedule both plugins share: windows of
``window`` frames every ``stride`` frames, the last one moved back to end on the last frame, so
every frame is covered, no window runs past the end, and nothing wraps around to the start.
"""

from __future__ import annotations

import numpy as np


def window_spans(num_frames: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` half-open spans covering ``range(num_frames)`` in order.

    A clip no longer than ``window`` is one span.  Consecutive spans overlap by at least
    ``window - stride`` frames.
    """
    if num_frames < 1 or window < 1 or not 1 <= stride <= window:
        raise ValueError(f"need frames >= 1 and 1 <= stride <= window, got {num_frames}, "
                         f"{window}, {stride}")  # fmt: skip
    if num_frames <= window:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return [(s, s + window) for s in starts]


def coverage(spans: list[tuple[int, int]], num_frames: int) -> np.ndarray:
    """How many spans cover each frame (the divisor when averaging overlaps)."""
    counts = np.zeros(num_frames, dtype=np.int64)
    for start, stop in spans:
        counts[start:stop] += 1
    return counts
