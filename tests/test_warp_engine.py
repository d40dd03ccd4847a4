"""The CPU warp engine: geometry (identity, translation, rotation), mouth and lids, robustness.

Real images throughout: scikit-image's astronaut with her dlib landmarks (a small face in a
512x512 portrait) and the cat with the landmarks faceshot ships (a face filling the frame).
Every check compares against the reference image or an independent warp of it, so a broken
warp (wrong affine, wrong triangle, nothing moved) fails it.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from faceshot_backends.warp_engine import CONTOURS, NUM_CORE, LandmarkWarper, build_mesh
from faceshot_core.schema import INNER_LIPS, LEFT_EYE, RIGHT_EYE
from faceshot_core.synthetic_faces import rigid, with_eyes_closed, with_mouth_open

_CORNERS = ([0, 0, -1, -1], [0, -1, 0, -1])


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)


def _mask(shape: tuple[int, ...], polygon: np.ndarray) -> np.ndarray:
    canvas = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(canvas, [np.rint(polygon).astype(np.int32)], 1)
    return canvas.astype(bool)


def _patch(image: np.ndarray, centre: np.ndarray, half: int) -> np.ndarray:
    x, y = (round(float(v)) for v in centre)
    return image[y - half : y + half, x - half : x + half].astype(np.float64)


def _assert_background_kept(out: np.ndarray, image: np.ndarray) -> None:
    """Around a small face (the astronaut's) the background beyond the smooth field's falloff
    is bit-exact, corners included.  A face filling the frame (the cat's) moves the fur right up
    to the image border, which slides with it (nothing is pinned there), so nothing is checked.
    """
    if image.shape[:2] == (512, 512):  # the astronaut: her face is in the upper middle
        np.testing.assert_array_equal(out[_CORNERS], image[_CORNERS])
        np.testing.assert_array_equal(out[:100, :100], image[:100, :100])
        np.testing.assert_array_equal(out[-100:, -100:], image[-100:, -100:])


# ------------------------------------------------------------------------------- basic contract


def test_output_is_a_new_uint8_image_and_inputs_are_untouched(face) -> None:
    image, ref = face
    image_before, ref_before = image.copy(), ref.copy()
    warper = LandmarkWarper(image, ref)
    points = rigid(with_mouth_open(ref, 0.3), 0.1, (5.0, -3.0))
    points_before = points.copy()
    out = warper.render(points)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.shares_memory(out, image)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(ref, ref_before)
    np.testing.assert_array_equal(points, points_before)
    assert image.flags.writeable  # the warper keeps its own (read-only) copy
    out[:] = 0  # the caller owns the frame: scribbling on it must not reach the next one
    np.testing.assert_array_equal(warper.render(ref), image)


def test_identity_reproduces_the_reference(face) -> None:
    image, ref = face
    warper = LandmarkWarper(image, ref)
    np.testing.assert_array_equal(warper.render(ref), image)  # nothing moved: exact copy
    # Sub-pixel jitter runs the whole pipeline (ids, affines, maps, remap): within 1 grey level
    # on average, and a few levels at most on sharp edges (the jitter moves them by 0.05 px).
    jitter = np.random.default_rng(1).uniform(-0.05, 0.05, ref.shape)
    out = warper.render(ref + jitter).astype(np.float64)
    err = np.abs(out - image)
    assert err.mean() < 0.5
    face_box = _patch(err, ref.mean(axis=0), 40)
    assert face_box.mean() < 1.0
    assert err.max() <= 12


def test_translation_moves_the_face_and_keeps_the_corners(face) -> None:
    image, ref = face
    shift = np.array([9.0, -6.0])
    out = LandmarkWarper(image, ref).render(ref + shift)
    nose = ref[30]
    expected = _patch(image, nose, 12)
    moved = _patch(out, nose + shift, 12)
    assert np.abs(moved - expected).mean() < 1.0  # integer shift: the content moves exactly
    assert np.abs(_patch(out, nose, 12) - expected).mean() > 5.0  # ... and it did move
    _assert_background_kept(out, image)


def test_subpixel_translation_matches_opencv(face) -> None:
    image, ref = face
    shift = np.array([3.4, -2.7])
    out = LandmarkWarper(image, ref).render(ref + shift)
    h, w = image.shape[:2]
    mat = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
    expected = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR)
    half = int(0.2 * np.linalg.norm(ref[16] - ref[0]))
    centre = ref[30] + shift
    assert np.abs(_patch(out, centre, half) - _patch(expected, centre, half)).max() <= 2


def test_rotation_turns_the_face_about_its_centre(face) -> None:
    image, ref = face
    angle = np.deg2rad(7.0)
    centre = ref[30]
    out = LandmarkWarper(image, ref).render(rigid(ref, angle, centre=centre))
    # The same rotation applied to the whole image by OpenCV (positive cv2 angles turn the
    # other way on screen, image y pointing down).
    mat = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), -np.rad2deg(angle), 1.0)
    h, w = image.shape[:2]
    expected = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR)
    half = int(0.15 * np.linalg.norm(ref[16] - ref[0]))  # well inside the face
    err = np.abs(_patch(out, centre, half) - _patch(expected, centre, half)).mean()
    unrotated = np.abs(_patch(image, centre, half) - _patch(expected, centre, half)).mean()
    assert err < 2.0
    assert unrotated > 3 * err + 2.0  # the comparison can tell a rotated patch from a still one
    _assert_background_kept(out, image)


def test_head_anchors_follow_the_head_and_fixed_anchors_stay(astronaut, astronaut_points) -> None:
    warper = LandmarkWarper(astronaut, astronaut_points)
    mesh = warper.mesh
    assert mesh.num_head >= 6 and mesh.num_fixed >= 4 and mesh.num_apron >= 8
    centre = astronaut_points.mean(axis=0)
    verts = warper.vertices_for(rigid(astronaut_points, 0.2, (12.0, -7.0), centre))
    head = slice(NUM_CORE, NUM_CORE + mesh.num_head)
    np.testing.assert_allclose(
        verts[head], rigid(mesh.vertices[head], 0.2, (12.0, -7.0), centre), atol=1e-6
    )
    np.testing.assert_array_equal(verts[-mesh.num_fixed :], mesh.vertices[-mesh.num_fixed :])
    # The apron, just outside the face, moves with it, if less than rigidly (the smooth field
    # beyond the face is the harmonic extension of the face's motion, which decays outwards).
    apron = slice(mesh.num_moving, mesh.num_moving + mesh.num_apron)
    rigidly = rigid(mesh.vertices[apron], 0.2, (12.0, -7.0), centre) - mesh.vertices[apron]
    moved = verts[apron] - mesh.vertices[apron]
    along = (moved * rigidly).sum() / (rigidly * rigidly).sum()  # least-squares share
    assert 0.4 < along < 1.1
    assert (
        np.linalg.norm(moved - rigidly, axis=1) < 0.5 * np.linalg.norm(rigidly, axis=1).max()
    ).all()


# ------------------------------------------------------------------------------- mesh


def test_mesh_tiles_the_image_and_keeps_the_contours(face) -> None:
    image, ref = face
    h, w = image.shape[:2]
    mesh = build_mesh(ref, (w, h))
    tris = mesh.triangles
    assert set(np.unique(tris)) == set(range(len(mesh.vertices)))  # every point is a vertex
    p = mesh.vertices[tris]
    areas = np.abs(
        (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
        - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    )
    inside = (mesh.vertices >= 0).all() and (mesh.vertices <= (w - 1, h - 1)).all()
    if inside:  # no overlap and no hole: the areas add up to the image rectangle
        assert areas.sum() / 2 == pytest.approx((w - 1) * (h - 1), rel=1e-6)
    edges = {
        frozenset(e) for t in tris.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))
    }
    for loop in CONTOURS.values():  # eyes and inner lips, with their midpoints
        for a, b in zip(loop, loop[1:] + loop[:1], strict=True):
            assert frozenset((a, b)) in edges


def test_closed_mouth_reference_still_opens(astronaut, astronaut_points) -> None:
    closed = astronaut_points.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]  # lips touching: coincident points
    mesh = build_mesh(closed, (512, 512))
    assert set(np.unique(mesh.triangles)) == set(range(len(mesh.vertices)))
    # The lips were pulled apart for the triangulation, so opening the mouth opens the triangles
    # between them and folds none outside (Delaunay on the touching lips would have joined the
    # upper lip to the outer lower lip across the lower inner one).
    warper = LandmarkWarper(astronaut, closed)
    dst = warper.vertices_for(with_mouth_open(closed, 0.4))[mesh.triangles]
    area = (dst[:, 1, 0] - dst[:, 0, 0]) * (dst[:, 2, 1] - dst[:, 0, 1]) - (
        dst[:, 1, 1] - dst[:, 0, 1]
    ) * (dst[:, 2, 0] - dst[:, 0, 0])
    assert not (area * mesh.orientation < -1e-6).any()
    inner = set(CONTOURS["inner_lips"])
    opened = [k for k, t in enumerate(mesh.triangles.tolist()) if set(t) <= inner]
    assert len(opened) >= 10 and (area[opened] > 1.0).all()


# ------------------------------------------------------------------------------- mouth and eyes


def test_opened_mouth_shows_a_dark_interior(face) -> None:
    image, ref = face
    opened = with_mouth_open(ref, 0.3)
    inner = _mask(image.shape, opened[list(INNER_LIPS)])
    before = _luma(image)[inner].mean()
    with_interior = _luma(LandmarkWarper(image, ref).render(opened))[inner].mean()
    plain = LandmarkWarper(image, ref, mouth_interior=False).render(opened)
    without = _luma(plain)[inner].mean()
    assert with_interior < before - 25  # a dark cavity where lips and teeth were
    assert with_interior < without - 20  # ... painted by the mouth interior, not the warp


def test_closed_reference_gets_teeth_under_the_upper_lip(astronaut, astronaut_points) -> None:
    closed = astronaut_points.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]
    opened = with_mouth_open(closed, 0.5)
    gap = float(np.linalg.norm(opened[66] - opened[62]))
    under_lip = opened[[61, 62, 63]] + (0.0, 0.15 * gap)
    middle = (opened[62] + opened[66]) / 2

    def luma_at(image: np.ndarray, xy: np.ndarray) -> float:
        return float(_luma(image)[round(float(xy[1])), round(float(xy[0]))])

    teeth = LandmarkWarper(astronaut, closed).render(opened)
    bare = LandmarkWarper(astronaut, closed, teeth=False).render(opened)
    for xy in under_lip:
        assert luma_at(teeth, xy) > luma_at(bare, xy) + 60
    assert luma_at(teeth, middle) < 60  # the back of the mouth stays dark


def test_reference_mouth_interior_rides_with_the_upper_lip(astronaut, astronaut_points) -> None:
    # The astronaut smiles with her teeth showing: opening wider keeps them under the upper lip.
    opened = with_mouth_open(astronaut_points, 0.4)
    out = LandmarkWarper(astronaut, astronaut_points).render(opened)
    teeth = astronaut_points[62] + (0.0, 3.0)  # the reference's teeth, under the upper lip
    lower = opened[66] - (0.0, 3.0)  # just above the dropped lower lip: the cavity
    luma = _luma(out)
    assert luma[int(teeth[1]), int(teeth[0])] > 150
    assert luma[int(lower[1]), int(lower[0])] < 90


def test_closing_eyes_covers_them_with_lid(chelsea, chelsea_points) -> None:
    closed = with_eyes_closed(chelsea_points)
    out = LandmarkWarper(chelsea, chelsea_points).render(closed)
    for run in (RIGHT_EYE, LEFT_EYE):
        eye = _mask(chelsea.shape, chelsea_points[list(run)])
        # dark pupils and iris give way to the lighter fur of the lid sliding over them
        assert _luma(out)[eye].mean() > _luma(chelsea)[eye].mean() + 10


def test_a_blink_folds_nothing_outside_the_eyes(face) -> None:
    # The lids of a round eye end below the corners; without the posts above the corners the
    # triangles joining the lids to the brow ends and the nose bridge fold over.
    image, ref = face
    warper = LandmarkWarper(image, ref)
    mesh = warper.mesh
    dst = warper.vertices_for(with_eyes_closed(ref))[mesh.triangles]
    area = (dst[:, 1, 0] - dst[:, 0, 0]) * (dst[:, 2, 1] - dst[:, 0, 1]) - (
        dst[:, 1, 1] - dst[:, 0, 1]
    ) * (dst[:, 2, 0] - dst[:, 0, 0])
    eye_vertices = set(CONTOURS["right_eye"]) | set(CONTOURS["left_eye"])
    inside_eye = np.array([set(t) <= eye_vertices for t in mesh.triangles.tolist()])
    folded = (area * mesh.orientation < -1e-6) & ~inside_eye
    assert not folded.any(), mesh.triangles[folded]


def test_closing_eyes_leaves_the_lower_lids_alone(face) -> None:
    # The upper lid comes down onto the lower one; the lower lid and the cheek under it stay.
    # (Catches contour midpoints coupling the lids, and folded eye triangles drawn on top.)
    image, ref = face
    warper = LandmarkWarper(image, ref, eyelid_shadow=False)
    out = warper.render(with_eyes_closed(ref)).astype(np.float64)
    for name in ("right_eye", "left_eye"):
        loop = list(CONTOURS[name])
        lower = warper.mesh.vertices[[*loop[6:], loop[0]]]  # corner, lower lid, corner
        depth = 0.15 * float(np.linalg.norm(lower[-1] - lower[0]))
        top, bottom = lower + np.array([0.0, 2.0]), lower + np.array([0.0, 2.0 + depth])
        band = _mask(image.shape, np.vstack([top, bottom[::-1]]))
        assert np.abs(out[band] - image[band]).mean() < 1.5


def test_eyelid_shadow_darkens_the_closed_lid_line(astronaut, astronaut_points) -> None:
    closed = with_eyes_closed(astronaut_points)
    shaded = _luma(LandmarkWarper(astronaut, astronaut_points).render(closed))
    plain = _luma(LandmarkWarper(astronaut, astronaut_points, eyelid_shadow=False).render(closed))
    for run in (RIGHT_EYE, LEFT_EYE):
        line = np.zeros(astronaut.shape[:2], np.uint8)
        cv2.polylines(line, [np.rint(closed[list(run[:4])]).astype(np.int32)], False, 1, 1)
        on_line = line.astype(bool)
        assert shaded[on_line].mean() < plain[on_line].mean() - 5


def test_blink_changes_only_the_eye_region(astronaut, astronaut_points) -> None:
    out = LandmarkWarper(astronaut, astronaut_points).render(with_eyes_closed(astronaut_points))
    diff = np.abs(out.astype(np.float64) - astronaut).sum(axis=-1)
    for run in (RIGHT_EYE, LEFT_EYE):
        assert _patch(diff, astronaut_points[list(run)].mean(axis=0), 6).mean() > 30
    mouth = astronaut_points[list(INNER_LIPS)].mean(axis=0)
    assert _patch(diff, mouth, 10).max() == 0  # nothing below the eyes moved
    assert _patch(diff, astronaut_points[33], 4).max() == 0


# ------------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "make",
    [
        lambda ref: ref * 40.0,
        lambda ref: ref + 10_000.0,
        lambda ref: ref - 3_000.0,
        lambda ref: np.full_like(ref, 100.0),  # everything collapsed onto one point
        lambda ref: ref[::-1].copy(),  # the landmark order reversed: the face turned inside out
        lambda ref: np.random.default_rng(0).uniform(-600, 1200, ref.shape),
    ],
    ids=["scaled", "far-right", "far-left", "collapsed", "reversed", "random"],
)
def test_extreme_points_give_a_finite_frame(face, make) -> None:
    image, ref = face
    warper = LandmarkWarper(image, ref)
    out = warper.render(make(ref))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert (out != image).any()  # it did warp (into something, folded over itself)
    np.testing.assert_array_equal(warper.render(ref), image)  # and kept no state


def test_non_finite_points_fall_back_to_the_reference(face) -> None:
    image, ref = face
    warper = LandmarkWarper(image, ref)
    nan = np.where(np.arange(68)[:, None] % 3 == 0, np.nan, ref)
    inf = np.where(np.arange(68)[:, None] == 8, np.inf, ref)
    np.testing.assert_array_equal(warper.render(nan), image)
    np.testing.assert_array_equal(warper.render(inf), image)
    shifted = np.where(np.arange(68)[:, None] == 8, np.nan, ref + np.array([4.0, 0.0]))
    assert (warper.render(shifted) != image).any()  # the finite points still drive the warp


def test_bad_inputs_are_refused(astronaut, astronaut_points) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        LandmarkWarper(astronaut.astype(np.float32), astronaut_points)
    with pytest.raises(ValueError, match="68, 2"):
        LandmarkWarper(astronaut, astronaut_points[:60])
    with pytest.raises(ValueError, match="NaN"):
        LandmarkWarper(astronaut, np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="68, 2"):
        LandmarkWarper(astronaut, astronaut_points).render(astronaut_points.ravel())


def test_fast_enough_for_video(astronaut, astronaut_points) -> None:
    """A loose guard (the benchmark measures): 512x512 frames well under 1/30 s each."""
    warper = LandmarkWarper(astronaut, astronaut_points)
    frames = [
        rigid(with_mouth_open(astronaut_points, 0.02 * k), 0.01 * k, (k, -k)) for k in range(20)
    ]
    warper.render(frames[1])
    start = time.perf_counter()
    for points in frames:
        warper.render(points)
    assert (time.perf_counter() - start) / len(frames) < 1 / 30
