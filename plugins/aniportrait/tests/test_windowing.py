"""AniPortrait's context windows: upstream's 16-frame, overlap-4 schedule without the wrap."""

from __future__ import annotations

import itertools

import pytest
from faceshot_aniportrait.windowing import OVERLAP, WINDOW, context_windows


def upstream_windows(num_frames: int, size: int = 16, overlap: int = 4) -> list[list[int]]:
    """Upstream's "uniform" context schedule as its long-video pipeline calls it, restated.

    With step 0 and context stride 1 it has no padding and one pass: windows start every
    ``size - overlap`` frames at 0, 12, ... up to the last frame, and frame indices are taken
    modulo the length, so windows near the end wrap around to the start.
    """
    if num_frames <= size:
        return [list(range(num_frames))]
    return [[e % num_frames for e in range(j, j + size)]
            for j in range(0, num_frames, size - overlap)]  # fmt: skip


def _wraps(window: list[int]) -> bool:
    return any(b != a + 1 for a, b in itertools.pairwise(window))


def test_constants_are_upstreams() -> None:
    assert (WINDOW, OVERLAP) == (16, 4)


def test_forty_frames_upstream_wraps_and_we_do_not() -> None:
    upstream = [
        list(range(0, 16)),
        list(range(12, 28)),
        list(range(24, 40)),
        [36, 37, 38, 39, *range(0, 12)],  # the wrap-around
    ]
    assert upstream_windows(40) == upstream
    assert context_windows(40) == upstream[:3]


@pytest.mark.parametrize("frames", range(1, 101))
def test_ours_are_upstreams_up_to_the_first_wrap_then_one_ending_on_the_last_frame(
    frames: int,
) -> None:
    ours = context_windows(frames)
    kept = list(itertools.takewhile(lambda w: not _wraps(w), upstream_windows(frames)))
    assert ours[: len(kept)] == kept
    assert len(ours) - len(kept) in (0, 1)
    assert ours[-1][-1] == frames - 1
    assert not any(_wraps(w) for w in ours)
    assert all(len(w) == min(WINDOW, frames) for w in ours)
    covered = sorted({f for w in ours for f in w})
    assert covered == list(range(frames))
    # consecutive windows share at least the upstream overlap, so every seam is averaged
    assert all(len(set(a) & set(b)) >= OVERLAP for a, b in itertools.pairwise(ours))


def test_short_clips_are_one_window_and_bad_arguments_are_refused() -> None:
    assert context_windows(16) == [list(range(16))]
    assert context_windows(3) == [[0, 1, 2]]
    assert context_windows(17) == [list(range(16)), list(range(1, 17))]
    with pytest.raises(ValueError):
        context_windows(0)
    with pytest.raises(ValueError, match="overlap"):
        context_windows(40, window=16, overlap=16)
