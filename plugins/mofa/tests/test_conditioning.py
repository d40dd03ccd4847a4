"""Sparse flow, landmark drawings and CMP's bin decoding on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from faceshot_mofa.conditioning import (
    CANVAS,
    LANDMARK_RUNS,
    bin_centres,
    draw_landmarks,
    expected_flow,
    landmark_images,
    sparse_flow,
)


def _face(h: int, w: int, seed: int = 0) -> np.ndarray:
    """68 distinct landmarks spread inside an (h, w) image."""
    rng = np.random.default_rng(seed)
    return rng.uniform([5.0, 5.0], [w - 5.0, h - 5.0], size=(68, 2)).astype(np.float32)


def test_sparse_flow_writes_the_displacement_at_frame_zero_pixel() -> None:
    base = np.zeros((68, 2), dtype=np.float32)
    base[:, 0] = np.arange(68) % 17 * 3 + 0.5
    base[:, 1] = np.arange(68) // 17 * 5 + 0.5
    moved = base.copy()
    moved[10] += (4.25, -2.5)
    flow, mask = sparse_flow(np.stack([base, moved, base]), (40, 60))
    assert flow.shape == mask.shape == (2, 2, 40, 60)
    assert flow.dtype == mask.dtype == torch.float32
    x, y = int(base[10, 0]), int(base[10, 1])
    assert flow[0, :, y, x].tolist() == [4.25, -2.5]
    assert float(flow[0].abs().sum()) == pytest.approx(6.75)
    assert float(flow[1].abs().sum()) == 0.0
    assert mask.sum() == 2 * 2 * 68
    assert (mask[:, 0] == mask[:, 1]).all()
    assert mask[1, 0, y, x] == 1.0


def test_sparse_flow_truncates_clips_and_keeps_the_last_write() -> None:
    base = _face(20, 30)
    base[0] = (-3.7, 2.9)  # clipped to x 0
    base[1] = (100.0, 50.0)  # clipped to (29, 19)
    base[2] = (7.9, 4.99)  # truncated to (7, 4)
    base[3] = (7.2, 4.1)  # same pixel as landmark 2: landmark 3 wins
    moved = base.copy()
    moved[:4] += np.array([[1, 1], [2, 2], [3, 3], [4, 4]], dtype=np.float32)
    flow, mask = sparse_flow(torch.from_numpy(np.stack([base, moved])), (20, 30))
    assert flow[0, :, 2, 0].tolist() == [1.0, 1.0]
    assert flow[0, :, 19, 29].tolist() == [2.0, 2.0]
    assert flow[0, :, 4, 7].tolist() == pytest.approx([4.0, 4.0])
    assert mask[0, :, 4, 7].tolist() == [1.0, 1.0]


def test_sparse_flow_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        sparse_flow(np.zeros((3, 5, 2)), (10, 10))
    bad = np.zeros((2, 68, 2))
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError):
        sparse_flow(bad, (10, 10))
    flow, mask = sparse_flow(np.zeros((1, 68, 2)), (4, 4))
    assert flow.shape == mask.shape == (0, 2, 4, 4)


def test_runs_cover_the_68_points() -> None:
    assert len(LANDMARK_RUNS) == 15
    covered = {i for _, run, _ in LANDMARK_RUNS for i in run}
    assert covered == set(range(68))
    assert len({colour for _, _, colour in LANDMARK_RUNS}) == 15


def test_drawing_is_black_away_from_lines_and_coloured_on_a_segment() -> None:
    points = np.full((68, 2), 300.0)  # everything piled in a far corner
    points[0:17, 0] = np.linspace(20.0, 180.0, 17)  # the jaw: a horizontal line at y = 40
    points[0:17, 1] = 40.0
    image = draw_landmarks(points)
    assert image.shape == (CANVAS, CANVAS, 3)
    jaw_colour = LANDMARK_RUNS[0][2]
    assert tuple(image[40, 25]) == jaw_colour  # between points 0 and 1
    assert image[100:250, 50:250].max() == 0.0
    assert image[45:, :200].max() == 0.0


def test_landmark_images_shape_range_and_position() -> None:
    h, w = 160, 240
    lm = np.full((2, 68, 2), 230.0, dtype=np.float32)
    lm[:, :, 1] = 150.0
    lm[:, 0:17, 0] = np.linspace(30.0, 150.0, 17)
    lm[:, 0:17, 1] = 80.0  # y 80 of 160 -> canvas row 160
    lm[1, 0:17, 1] = 40.0
    images = landmark_images(lm, (h, w))
    assert images.shape == (2, 3, h, w)
    assert images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    colour = torch.tensor(LANDMARK_RUNS[0][2], dtype=torch.float32) / 255.0
    mid_x = int((30.0 + 37.5) / 2)  # between jaw points 0 and 1
    torch.testing.assert_close(images[0, :, 80, mid_x], colour, atol=1e-6, rtol=0)
    torch.testing.assert_close(images[1, :, 40, mid_x], colour, atol=1e-6, rtol=0)
    assert float(images[0, :, 40, mid_x].abs().max()) == 0.0
    assert float(images[:, :, 100:140, 20:200].abs().max()) == 0.0


def test_landmark_images_resize_is_bilinear_on_the_float_canvas() -> None:
    lm = np.stack([_face(100, 100, seed=3)])
    images = landmark_images(lm, (100, 100))
    # A bilinear downscale of lines produces values between the palette levels.
    values = np.unique(np.round(images.numpy() * 255.0, 3))
    palette = {float(v) for _, _, c in LANDMARK_RUNS for v in c} | {0.0}
    assert any(float(v) not in palette for v in values)


def test_bin_centres_convention() -> None:
    centres = bin_centres()
    assert centres.shape == (99,)
    step = 100.0 / 99.0
    assert float(centres[0]) == pytest.approx(-50.0 + step / 2)
    assert float(centres[-1]) == pytest.approx(50.0 - step / 2)
    assert float(centres[49]) == pytest.approx(0.0, abs=1e-5)
    assert float(centres[1] - centres[0]) == pytest.approx(step)


def test_expected_flow_on_peaked_logits() -> None:
    logits = torch.full((1, 198, 2, 3), -1e4)
    centres = bin_centres()
    logits[0, 0, 0, 0] = 0.0  # x at bin 0 -> the lowest centre
    logits[0, 99 + 98, 0, 0] = 0.0  # y at bin 98 -> the highest
    logits[0, 49, 0, 1:] = 0.0  # x at the middle bin -> 0
    logits[0, 99 + 60, 0, 1:] = 0.0
    logits[0, 10, 1, :] = 0.0
    logits[0, 11, 1, :] = 0.0  # two equal bins: their mean
    logits[0, 99 + 70, 1, :] = 0.0
    flow = expected_flow(logits)
    assert flow.shape == (1, 2, 2, 3)
    torch.testing.assert_close(flow[0, :, 0, 0], torch.stack([centres[0], centres[98]]))
    torch.testing.assert_close(flow[0, 0, 0, 1:], torch.zeros(2))
    torch.testing.assert_close(flow[0, 1, 0, 1:], centres[60].repeat(2))
    torch.testing.assert_close(flow[0, 0, 1], ((centres[10] + centres[11]) / 2).repeat(3))
    torch.testing.assert_close(flow[0, 1, 1], centres[70].repeat(3))


def test_expected_flow_uniform_is_zero_and_shapes_checked() -> None:
    flow = expected_flow(torch.zeros(2, 198, 4, 4, dtype=torch.float16))
    assert flow.dtype == torch.float16
    assert float(flow.abs().max()) < 1e-3
    with pytest.raises(ValueError):
        expected_flow(torch.zeros(1, 197, 4, 4))
