"""Fill frames without a face from their neighbours, and say which ones were filled.

The paper's reference code copies the previous frame's landmarks into a frame with no face.
Linear interpolation between the last frame before and the first frame after the gap is as
cheap and does not freeze the face and then jump; at the ends of the video, where there is only
one neighbour, its landmarks are held.  Every filled frame is flagged, so later stages (and
users) can tell measured frames from made-up ones (:attr:`LandmarkSequence.interpolated`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceshot_core.errors import NoFaceError


def fill_gaps(
    frames: Sequence[np.ndarray | None], *, source: str = "video"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(points [M, 68, 2] float32, filled [M] bool)`` from per-frame results.

    ``frames[m]`` is the ``[68, 2]`` landmarks of frame ``m`` or ``None`` where no face was
    found.  Missing frames between two detections are linearly interpolated, missing frames
    before the first / after the last detection hold that detection.  Raises
    :class:`NoFaceError` naming ``source`` when no frame has a face.
    """
    count = len(frames)
    found = np.array([f is not None for f in frames], dtype=bool)
    if count == 0 or not found.any():
        raise NoFaceError(
            f"{source}: no face found in any of its {count} frames; a driving video must show "
            "a human face, roughly frontal and at least about an eighth of the frame wide"
        )
    known = np.flatnonzero(found)
    stack = np.stack([np.asarray(frames[int(i)], dtype=np.float64) for i in known])
    out = np.empty((count, *stack.shape[1:]), dtype=np.float64)
    out[known] = stack
    missing = np.flatnonzero(~found)
    if missing.size:
        # For each missing frame: the known frames on either side (clamped at the ends).
        after = np.searchsorted(known, missing)
        right = np.clip(after, 0, len(known) - 1)
        left = np.clip(after - 1, 0, len(known) - 1)
        t0, t1 = known[left].astype(np.float64), known[right].astype(np.float64)
        span = np.where(t1 > t0, t1 - t0, 1.0)
        weight = np.clip((missing - t0) / span, 0.0, 1.0)[:, None, None]
        out[missing] = (1.0 - weight) * stack[left] + weight * stack[right]
    return out.astype(np.float32), ~found
