"""Which frames each 16-frame context window holds (no torch here: the backend's class reads it).

AniPortrait's motion modules were trained on 16-frame clips (their positional encoding allows
at most 32), so a longer clip is denoised in overlapping windows of 16 frames overlapping by 4:
a new window every 12 frames.  At every step each window's noise prediction is added to its
frames and each frame's prediction is the average over the windows that hold it (see
:class:`faceshot_backends.windows.WindowAverage`).

Upstream lets the last window run past the end and wrap around to the first frames (for 40
frames its windows are 0-15, 12-27, 24-39 and 36-39 + 0-11), so the motion module treats the
clip's end and start as one continuous take and pulls them towards each other.  Here no window
wraps: the windows are :func:`faceshot_backends.windows.window_spans`, the schedule every
windowed backend shares - upstream's windows up to the first one that would wrap, then one more
moved back to end on the last frame when the clip is not yet covered.
"""

from __future__ import annotations

from faceshot_backends.windows import window_spans

#: Frames the motion modules see at once, and how many consecutive windows share.
WINDOW = 16
OVERLAP = 4


def context_windows(
    num_frames: int, window: int = WINDOW, overlap: int = OVERLAP
) -> list[list[int]]:
    """The frame indices of each window, in order, covering every frame, none wrapping.

    A clip of at most ``window`` frames is one window of all its frames.  Longer clips: windows
    of ``window`` consecutive frames every ``window - overlap`` frames, the last one ending on the
    last frame.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"need 0 <= overlap < window, got overlap {overlap}, window {window}")
    return [list(range(start, stop)) for start, stop in
            window_spans(num_frames, window, window - overlap)]  # fmt: skip
