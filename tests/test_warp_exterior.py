"""The warp outside the face: a smooth field, an unpinned image border, a seamless hand-over.

Real images (scikit-image's astronaut with her dlib landmarks, the cat with the landmarks
faceshot ships).  The checks look at the backward map the warp samples the reference with
(:meth:`LandmarkWarper.backward_map`) and at rendered frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceshot_backends.warp_engine import LandmarkWarper
from faceshot_core.synthetic_faces import rigid, with_mouth_open


def _half_width(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[16] - points[0])) / 2


def _talking_turn(points: np.ndarray) -> np.ndarray:
    """Open mouth (the jaw drops), the head turned 5 degrees and moved by a tenth of its size."""
    s = _half_width(points)
    return rigid(with_mouth_open(points, 0.3), np.deg2rad(5.0), (0.1 * s, 0.08 * s))


def _displacement(warper: LandmarkWarper, points: np.ndarray) -> np.ndarray:
    h, w = warper.image.shape[:2]
    grid = np.dstack(np.meshgrid(np.arange(w), np.arange(h))).astype(np.float64)
    return warper.backward_map(points).astype(np.float64) - grid


def _beyond_apron(warper: LandmarkWarper, points: np.ndarray, margin: int = 3) -> np.ndarray:
    """Frame pixels off the face and the apron (their destination triangles), by ``margin``."""
    mesh = warper.mesh
    drawn = mesh.num_moving + mesh.num_apron
    dst = warper.vertices_for(points)
    mask = np.zeros(warper.image.shape[:2], np.uint8)
    for t in mesh.triangles[(mesh.triangles < drawn).all(axis=1)]:
        cv2.fillConvexPoly(mask, np.rint(dst[t]).astype(np.int32), 1)
    return cv2.dilate(mask, np.ones((2 * margin + 1,) * 2, np.uint8)) == 0


def _second_differences(d: np.ndarray) -> np.ndarray:
    """Largest second difference of a field [H, W, 2] along x or y at each pixel (0 at edges)."""
    out = np.zeros(d.shape[:2])
    out[:, 1:-1] = np.abs(d[:, 2:] - 2 * d[:, 1:-1] + d[:, :-2]).max(axis=2)
    out[1:-1] = np.maximum(out[1:-1], np.abs(d[2:] - 2 * d[1:-1] + d[:-2]).max(axis=2))
    return out


def test_displacement_is_continuous_everywhere(face) -> None:
    # A jump between neighbouring pixels would be a seam: the face warp meeting the smooth
    # field, or the moving part meeting the still background.
    image, ref = face
    d = _displacement(LandmarkWarper(image, ref), _talking_turn(ref))
    assert np.abs(np.diff(d, axis=0)).max() < 1.5
    assert np.abs(np.diff(d, axis=1)).max() < 1.5


def test_displacement_bends_smoothly_outside_the_face(face) -> None:
    # A piecewise-affine field over big triangles kinks every whisker, hair or background line
    # at the triangle edges (second differences of 0.3-5 px here); the smooth field's largest
    # bends are the bilinear cells of its coarse grid.
    image, ref = face
    warper = LandmarkWarper(image, ref)
    points = _talking_turn(ref)
    d = _displacement(warper, points)
    assert np.abs(d).max() > 5.0  # the field did move things
    beyond = _beyond_apron(warper, points)
    assert beyond.mean() > 0.05
    assert _second_differences(d)[beyond].max() < 0.15


def test_background_far_from_a_small_face_stays(astronaut, astronaut_points) -> None:
    d = _displacement(LandmarkWarper(astronaut, astronaut_points), _talking_turn(astronaut_points))
    np.testing.assert_array_equal(d[:100, :100], 0.0)
    np.testing.assert_array_equal(d[-150:], 0.0)
    assert np.abs(d[80:200, 150:300]).max() > 5.0


def test_top_border_keeps_its_texture_when_the_head_moves(chelsea, chelsea_points) -> None:
    # The cat's crown is at the top edge.  A border pinned in place would stretch the strip
    # between it and the moving head (smeared fur); sliding with the head and sampled with
    # reflection, the strip keeps its texture.
    image = chelsea.copy()
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (40, image.shape[1], 1)).astype(np.float32)
    image[:40] = np.clip(cv2.GaussianBlur(noise, (0, 0), 0.7)[..., None] + 0.0, 0, 255).astype(
        np.uint8
    )
    s = _half_width(chelsea_points)
    out = LandmarkWarper(image, chelsea_points).render(chelsea_points + np.array([0.0, 0.1 * s]))

    def vertical_detail(img: np.ndarray) -> float:
        grey = cv2.cvtColor(img[:24], cv2.COLOR_RGB2GRAY).astype(np.float64)
        return float(np.abs(np.diff(grey, axis=0)).mean())

    assert vertical_detail(out) > 0.7 * vertical_detail(image)
    assert np.abs(out[:24].astype(np.float64) - image[:24]).mean() > 5.0  # and it did move


def test_identity_when_nothing_moves(face) -> None:
    image, ref = face
    warper = LandmarkWarper(image, ref)
    np.testing.assert_array_equal(warper.render(ref), image)
    np.testing.assert_array_equal(_displacement(warper, ref), 0.0)
    jitter = np.random.default_rng(2).uniform(-0.02, 0.02, ref.shape)
    out = warper.render(ref + jitter).astype(np.float64)
    assert np.abs(out - image).mean() < 0.5
    assert np.abs(_displacement(warper, ref + jitter)).max() < 0.1
