"""WindowAverage: per-frame averaging of overlapping window outputs (numpy and torch).

window_spans itself is covered in test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceshot_backends.windows import WindowAverage, coverage, window_spans


def _windows(frames: int, window: int, stride: int) -> list[list[int]]:
    return [list(range(a, b)) for a, b in window_spans(frames, window, stride)]


def _by_hand(outputs: list[tuple[list[int], np.ndarray]], frames: int, axis: int) -> np.ndarray:
    """The mean written out: per frame, the slices of the windows that list it."""
    shape = list(outputs[0][1].shape)
    shape[axis] = frames
    out = np.zeros(shape)
    for f in range(frames):
        parts = [np.take(v, k, axis=axis) for w, v in outputs for k, g in enumerate(w) if g == f]
        np.moveaxis(out, axis, 0)[f] = np.mean(parts, axis=0)
    return out


@pytest.mark.parametrize(("frames", "axis"), [(40, 0), (29, 2), (7, -1)])
def test_numpy_mean_is_the_per_frame_average_of_the_windows(frames: int, axis: int) -> None:
    rng = np.random.default_rng(0)
    avg = WindowAverage(frames, axis=axis)
    outputs = []
    for window in _windows(frames, 16, 12):
        shape = [2, 3, 5, 4]
        shape[axis] = len(window)
        values = rng.standard_normal(shape)
        avg.add(window, values)
        outputs.append((window, values))
    np.testing.assert_allclose(avg.mean(), _by_hand(outputs, frames, axis), rtol=1e-12)
    np.testing.assert_array_equal(avg.counts, coverage(window_spans(frames, 16, 12), frames))


def test_constant_windows_average_to_the_constant_and_duplicates_count_twice() -> None:
    avg = WindowAverage(5)
    avg.add([0, 1, 2], np.full(3, 2.0))
    avg.add([2, 3, 4], np.full(3, 2.0))
    np.testing.assert_array_equal(avg.mean(), np.full(5, 2.0))
    avg.add([4, 4], np.array([8.0, 8.0]))  # a frame listed twice in one window
    assert avg.counts.tolist() == [1, 1, 2, 1, 3]
    assert avg.mean()[4] == pytest.approx(6.0)


def test_half_precision_is_accumulated_in_float32() -> None:
    avg = WindowAverage(3)
    for _ in range(4):
        avg.add([0, 1, 2], np.full(3, 1.0 / 3.0, dtype=np.float16))
    mean = avg.mean()
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, np.float16(1.0 / 3.0), rtol=1e-6)
    doubles = WindowAverage(1)
    doubles.add([0], np.ones(1))
    assert doubles.mean().dtype == np.float64


def test_uncovered_frames_and_bad_windows_are_refused() -> None:
    avg = WindowAverage(20)
    with pytest.raises(ValueError, match="no window covered frames 0, 1, 2"):
        avg.mean()
    avg.add(list(range(16)), np.zeros((16, 2)))
    with pytest.raises(ValueError, match="16, 17, 18, 19"):
        avg.mean()
    with pytest.raises(ValueError, match="3 frames listed for 16"):
        avg.add([0, 1, 2], np.zeros((16, 2)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 20\)"):
        avg.add([18, 19, 20], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="does not match"):
        avg.add([17, 18, 19], np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least one frame"):
        WindowAverage(0)


def test_torch_tensors_match_numpy_and_keep_dtype_rules() -> None:
    torch = pytest.importorskip("torch")
    frames = 40
    rng = np.random.default_rng(1)
    by_numpy, by_torch, half = (WindowAverage(frames, axis=2) for _ in range(3))
    for window in _windows(frames, 16, 12):
        values = rng.standard_normal((2, 4, len(window), 3, 3)).astype(np.float32)
        by_numpy.add(window, values)
        by_torch.add(window, torch.from_numpy(values))
        half.add(window, torch.from_numpy(values).to(torch.bfloat16))
    mean = by_torch.mean()
    assert isinstance(mean, torch.Tensor) and mean.dtype == torch.float32
    np.testing.assert_allclose(mean.numpy(), by_numpy.mean(), rtol=1e-6, atol=1e-7)
    assert half.mean().dtype == torch.float32
    with pytest.raises(ValueError, match="does not match"):
        by_torch.add([0], np.zeros((2, 4, 1, 3, 3), dtype=np.float32))  # numpy after tensors


def test_upstream_style_sum_and_counter_give_the_same_average() -> None:
    """AniPortrait adds each window's prediction into a full-length buffer and counts frames,
    then divides once: the same numbers as WindowAverage."""
    torch = pytest.importorskip("torch")
    frames = 30
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(2, 4, frames, 8, 8)
    counter = torch.zeros(1, 1, frames, 1, 1)
    avg = WindowAverage(frames, axis=2)
    for window in _windows(frames, 16, 12):
        pred = torch.randn(2, 4, len(window), 8, 8, generator=gen)
        total[:, :, window] += pred
        counter[:, :, window] += 1
        avg.add(window, pred)
    torch.testing.assert_close(avg.mean(), total / counter)
