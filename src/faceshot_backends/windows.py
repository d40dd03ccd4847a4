"""Temporal windows for backends that generate clips in overlapping chunks.

Video diffusion models see a fixed number of frames at once (MOFA-Video 25, AniPortrait 16).
To animate any length they denoise overlapping windows and average the overlaps (in latent
space, at every step).  :func:`window_spans` is the schedule both plugins share: windows of
``window`` frames every ``stride`` frames, the last one moved back to end on the last frame, so
every frame is covered, no window runs past the end, and nothing wraps around to the start.
:class:`WindowAverage` sums what each window predicts per frame and divides by how many
windows held the frame, for numpy arrays and torch tensors alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class WindowAverage:
    """Per-frame average of what overlapping windows predict.

    A windowed sampler runs its model on each window and needs, for every frame, the mean over
    the windows holding it (AniPortrait averages its noise predictions this way before applying
    guidance).  :meth:`add` accumulates one window's output ``values`` - the frames ``frames``
    along ``axis`` - into per-frame sums and counts; :meth:`mean` divides.  Only sums and counts
    are kept, so memory is one output's worth whatever the number of windows.

    ``values`` may be numpy arrays or torch tensors (torch is imported only once a tensor has
    been given, so this module stays importable without it); tensors stay on their device.
    Sums are kept in at least float32: half-precision outputs of several windows lose nothing
    to the accumulation, and :meth:`mean` returns that dtype (cast back if needed).  A frame
    listed twice in one window counts twice.
    """

    def __init__(self, num_frames: int, axis: int = 0) -> None:
        if num_frames < 1:
            raise ValueError(f"need at least one frame, got {num_frames}")
        self.num_frames = num_frames
        self.axis = axis
        self._sums: Any = None
        self._counts = np.zeros(num_frames, dtype=np.int64)

    @property
    def counts(self) -> np.ndarray:
        """How many windows have covered each frame so far (a copy)."""
        return self._counts.copy()

    def add(self, frames: Sequence[int], values: Any) -> None:
        """Add one window's output: ``values``' slice ``k`` along the frame axis is frame
        ``frames[k]``."""
        index = np.asarray(frames, dtype=np.int64).reshape(-1)
        axis = self.axis % values.ndim
        if values.shape[axis] != len(index):
            raise ValueError(f"{len(index)} frames listed for {values.shape[axis]} along axis "
                             f"{self.axis}")  # fmt: skip
        if len(index) and (index.min() < 0 or index.max() >= self.num_frames):
            raise ValueError(f"frame indices must lie in [0, {self.num_frames}), got {frames}")
        shape = (*values.shape[:axis], self.num_frames, *values.shape[axis + 1 :])
        is_tensor = hasattr(values, "index_add_")
        if self._sums is None:
            self._sums = _zeros(values, shape, is_tensor)
        elif tuple(self._sums.shape) != shape or is_tensor != hasattr(self._sums, "index_add_"):
            raise ValueError(f"window output {tuple(values.shape)} does not match the earlier "
                             f"ones (sums {tuple(self._sums.shape)})")  # fmt: skip
        if is_tensor:
            import torch

            where = torch.as_tensor(index, device=self._sums.device)
            self._sums.index_add_(axis, where, values.to(self._sums.dtype))
        else:
            np.add.at(np.moveaxis(self._sums, axis, 0), index, np.moveaxis(values, axis, 0))
        np.add.at(self._counts, index, 1)

    def mean(self) -> Any:
        """Per-frame sums over counts; every frame must have been covered by some window."""
        missing = np.flatnonzero(self._counts == 0)
        if self._sums is None or len(missing):
            shown = ", ".join(str(int(i)) for i in missing[:8])
            more = " ..." if len(missing) > 8 else ""
            raise ValueError(f"no window covered frames {shown}{more}")
        axis = self.axis % self._sums.ndim
        view = [1] * self._sums.ndim
        view[axis] = self.num_frames
        if hasattr(self._sums, "index_add_"):
            import torch

            divisor = torch.as_tensor(self._counts, dtype=self._sums.dtype,
                                      device=self._sums.device)  # fmt: skip
            return self._sums / divisor.reshape(view)
        return self._sums / self._counts.astype(self._sums.dtype).reshape(view)


def _zeros(like: Any, shape: tuple[int, ...], is_tensor: bool) -> Any:
    """Zero sums shaped ``shape`` in ``like``'s kind, dtype promoted to at least float32."""
    if is_tensor:
        import torch

        dtype = torch.promote_types(like.dtype, torch.float32)
        return torch.zeros(shape, dtype=dtype, device=like.device)
    return np.zeros(shape, dtype=np.result_type(like.dtype, np.float32))
