"""Which frames each 25-frame window holds (no torch here: the backend's class reads it).

MOFA's adapter and the SVD UNet were trained on 25-frame clips whose first frame is the
reference, so a longer clip is cut into overlapping windows, each made of frame 0 followed by
24 consecutive frames, a new window every 12 frames; the last window is moved back to end on
the last frame.  Unlike upstream, every frame window is listed once (upstream repeats its last
window whenever ``(T - 25)`` is a multiple of 12, double-weighting it) and any length from 2
frames works (upstream needs 25).  The spans come from
:func:`faceshot_backends.windows.window_spans`, the schedule every windowed backend shares.
"""

from __future__ import annotations

from faceshot_backends.windows import window_spans

#: Frames the model sees at once (frame 0 plus 24), and how far consecutive windows move.
WINDOW = 25
STRIDE = 12


def frame_windows(num_frames: int, window: int = WINDOW, stride: int = STRIDE) -> list[list[int]]:
    """The frames of each window: ``[0, a, a + 1, ..., b - 1]``, covering every frame.

    A clip of at most ``window`` frames is one window.  Longer clips: windows of ``window - 1``
    consecutive frames from 1 on, every ``stride`` frames, the last moved back to end on the
    last frame, each with frame 0 in front.
    """
    if num_frames < 2:
        raise ValueError(f"need at least 2 frames (the reference and one more), got {num_frames}")
    if window < 2 or not 1 <= stride < window:
        raise ValueError(f"need window >= 2 and 1 <= stride < window, got {window}, {stride}")
    if num_frames <= window:
        return [list(range(num_frames))]
    spans = window_spans(num_frames - 1, window - 1, stride)
    return [[0, *range(1 + start, 1 + stop)] for start, stop in spans]
