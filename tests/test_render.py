"""Rendering: overlays draw on copies, per-part colours, pose images on black."""

from __future__ import annotations

import numpy as np

from faceshot_core.render import PART_COLORS, draw_landmarks, overlay_frames, pose_image


def test_overlay_draws_on_a_copy(astronaut: np.ndarray, random_face: np.ndarray) -> None:
    original = astronaut.copy()
    out = draw_landmarks(astronaut, random_face)
    np.testing.assert_array_equal(astronaut, original)
    assert (out != astronaut).any(axis=-1).sum() > 68 * 4


def test_points_land_where_they_should() -> None:
    blank = np.zeros((100, 100, 3), np.uint8)
    pts = np.full((68, 2), 50.0)
    pts[48:] = (80.25, 20.75)  # the mouth points, drawn in the mouth colour
    out = draw_landmarks(blank, pts, lines=False)
    np.testing.assert_array_equal(out[21, 80], PART_COLORS["mouth"])
    np.testing.assert_array_equal(out[50, 50], PART_COLORS["eyes"])  # 36-47 drawn last there
    assert out[5, 5].sum() == 0


def test_pose_image_size_and_content(random_face: np.ndarray) -> None:
    img = pose_image(random_face, (512, 256))
    assert img.shape == (256, 512, 3)
    assert img.any()


def test_interpolated_frames_drawn_grey(random_face: np.ndarray) -> None:
    frames = [np.zeros((512, 512, 3), np.uint8)] * 2
    seq = np.stack([random_face] * 2)
    drawn = list(overlay_frames(frames, seq, flags=np.array([False, True])))
    grey = drawn[1][drawn[1].any(axis=-1)]
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    colour = drawn[0][drawn[0].any(axis=-1)]
    assert not (colour[:, 0] == colour[:, 2]).all()
