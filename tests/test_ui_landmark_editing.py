"""The web app's landmark-editing logic (pure numpy; no Gradio needed)."""

from __future__ import annotations

import numpy as np
import pytest

from faceshot.ui.landmark_editing import (
    ANCHOR_NAMES,
    MIDLINE,
    MIRROR_PAIRS,
    EditHistory,
    anchors_of,
    clamp_to_image,
    mirror_side,
    point_labels,
    template_from_anchors,
)
from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.schema import NUM_POINTS, part_of
from faceshot_core.synthetic_faces import mean_face, rigid

SIZE = 512
FIRST = [a for a, _ in MIRROR_PAIRS]
SECOND = [b for _, b in MIRROR_PAIRS]


def _is_symmetric(points: np.ndarray, atol: float = 1e-6) -> bool:
    """Pair midpoints on one line, and every pair perpendicular to it."""
    mids = 0.5 * (points[FIRST] + points[SECOND])
    centred = mids - mids.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred)
    direction = vt[0]
    return bool(
        singular[1] < atol
        and np.allclose((points[FIRST] - points[SECOND]) @ direction, 0, atol=atol)
    )


# --- tables -------------------------------------------------------------------------------------


def test_anchor_names_in_click_order() -> None:
    assert ANCHOR_NAMES == ("right eye centre", "left eye centre", "mouth centre")


def test_pairs_and_midline_cover_every_point_exactly_once() -> None:
    indices = [i for pair in MIRROR_PAIRS for i in pair] + list(MIDLINE)
    assert sorted(indices) == list(range(NUM_POINTS))


def test_pairs_are_mirror_images_in_the_mean_face() -> None:
    face = mean_face(SIZE)
    reflected = face.copy()
    reflected[:, 0] = SIZE - reflected[:, 0]
    np.testing.assert_allclose(reflected[FIRST], face[SECOND], atol=1e-9)
    np.testing.assert_allclose(face[list(MIDLINE), 0], SIZE / 2, atol=1e-9)
    assert (face[FIRST, 0] < SIZE / 2).all()  # the first member is on the image left


# --- template ----------------------------------------------------------------------------------


def test_anchors_of_the_mean_face() -> None:
    face = mean_face(SIZE)
    anchors = anchors_of(face)
    assert anchors.shape == (3, 2)
    np.testing.assert_allclose(anchors[0], face[36:42].mean(axis=0))
    np.testing.assert_allclose(anchors[1], face[42:48].mean(axis=0))
    np.testing.assert_allclose(anchors[2], face[48:68].mean(axis=0))
    assert anchors[0, 0] < anchors[1, 0] and anchors[2, 1] > anchors[0, 1]


def test_template_on_the_mean_faces_own_anchors_is_the_mean_face() -> None:
    face = mean_face(SIZE)
    points = template_from_anchors(*anchors_of(face))
    assert points.shape == (NUM_POINTS, 2) and points.dtype == np.float64
    np.testing.assert_allclose(points, face, atol=1e-9)


@pytest.mark.parametrize(
    "clicks",
    [
        [(100.0, 200.0), (300.0, 210.0), (205.0, 330.0)],
        [(50.0, 100.0), (450.0, 100.0), (250.0, 400.0)],  # wide-set eyes, low mouth
        [(300.0, 80.0), (420.0, 200.0), (260.0, 260.0)],  # tilted and sheared
    ],
)
def test_template_anchors_land_exactly_on_the_clicks(clicks: list[tuple[float, float]]) -> None:
    points = template_from_anchors(*clicks)
    np.testing.assert_allclose(anchors_of(points), clicks, atol=1e-9)


def test_template_is_affine_not_a_similarity() -> None:
    """Eyes about 5x further apart than the mean face's, mouth as low as usual: stretched."""
    face = mean_face(SIZE)
    right, left, mouth = anchors_of(face)
    shift = np.array([300.0, 0.0])
    wide = template_from_anchors(right - shift, left + shift, mouth)
    assert np.ptp(wide[:, 0]) > 3 * np.ptp(face[:, 0])
    np.testing.assert_allclose(np.ptp(wide[:, 1]), np.ptp(face[:, 1]), rtol=1e-9)


def test_upside_down_clicks_give_the_face_turned_round() -> None:
    upside_down = rigid(mean_face(SIZE), np.pi)
    np.testing.assert_allclose(template_from_anchors(*anchors_of(upside_down)), upside_down)


def test_mirrored_clicks_give_a_mirrored_template() -> None:
    points = template_from_anchors((300.0, 200.0), (100.0, 200.0), (200.0, 330.0))
    np.testing.assert_allclose(anchors_of(points)[:2], [(300, 200), (100, 200)], atol=1e-9)
    assert (points[36:42, 0] > points[42:48, 0].max()).all()


@pytest.mark.parametrize(
    "clicks",
    [
        [(100.0, 100.0), (100.0, 100.0), (100.0, 100.0)],  # coincide
        [(100.0, 100.0), (300.0, 100.0), (200.0, 100.0)],  # collinear
        [(100.0, 100.0), (300.0, 100.0), (200.0, 102.0)],  # nearly collinear
        [(100.0, 100.0), (100.0, 100.0), (200.0, 300.0)],  # both eyes on one spot
        [(100.0, float("nan")), (300.0, 100.0), (200.0, 300.0)],
        [(100.0, 100.0), (300.0, float("inf")), (200.0, 300.0)],
        [(100.0, 100.0, 1.0), (300.0, 100.0), (200.0, 300.0)],
    ],
)
def test_template_refuses_bad_clicks(clicks: list[tuple[float, ...]]) -> None:
    with pytest.raises(InvalidLandmarksError) as info:
        template_from_anchors(*clicks)
    assert "\n" not in str(info.value)


def test_template_does_not_modify_its_input() -> None:
    clicks = [np.array([100.0, 200.0]), np.array([300.0, 210.0]), np.array([205.0, 330.0])]
    before = [c.copy() for c in clicks]
    template_from_anchors(*clicks)
    for c, b in zip(clicks, before, strict=True):
        np.testing.assert_array_equal(c, b)


# --- mirror ------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", ["image_left", "image_right"])
def test_mirror_of_the_mean_face_is_itself(keep: str) -> None:
    face = mean_face(SIZE)
    np.testing.assert_allclose(mirror_side(face, keep), face, atol=1e-9)  # type: ignore[arg-type]


def test_mirror_restores_a_dragged_point_from_the_other_side() -> None:
    face = mean_face(SIZE)
    dragged = face.copy()
    dragged[36] += (25.0, -18.0)  # right eye's outer corner, on the image left
    dragged[30] += (12.0, 5.0)  # a midline point: stays, and does not tilt the axis
    out = mirror_side(dragged, keep="image_right")
    np.testing.assert_allclose(out[36], face[36], atol=1e-9)
    np.testing.assert_allclose(out[30], dragged[30])
    others = [i for i in range(NUM_POINTS) if i != 30]
    np.testing.assert_allclose(out[others], face[others], atol=1e-9)


def test_mirror_keeps_the_chosen_side_and_makes_the_face_symmetric() -> None:
    rng = np.random.default_rng(0)
    face = mean_face(SIZE) + rng.normal(0.0, 4.0, (NUM_POINTS, 2))
    left = mirror_side(face, keep="image_left")
    right = mirror_side(face, keep="image_right")
    np.testing.assert_array_equal(left[FIRST], face[FIRST])
    np.testing.assert_array_equal(right[SECOND], face[SECOND])
    np.testing.assert_array_equal(left[list(MIDLINE)], face[list(MIDLINE)])
    assert not np.allclose(left, right)
    for out in (left, right):
        assert _is_symmetric(out)
        np.testing.assert_allclose(mirror_side(out, "image_left"), out, atol=1e-9)
        np.testing.assert_allclose(mirror_side(out, "image_right"), out, atol=1e-9)


def test_mirror_works_along_a_rotated_axis() -> None:
    face = rigid(mean_face(SIZE), np.deg2rad(30.0))
    dragged = face.copy()
    dragged[[46, 55]] += [(10.0, 10.0), (-8.0, 6.0)]  # image-right points
    out = mirror_side(dragged, keep="image_left")
    np.testing.assert_allclose(out, face, atol=1e-9)
    assert _is_symmetric(out)


@pytest.mark.parametrize(
    "face",
    [
        rigid(mean_face(SIZE), np.pi),  # upside down
        template_from_anchors((300.0, 200.0), (100.0, 200.0), (200.0, 330.0)),  # mirrored
    ],
)
def test_mirror_keeps_what_the_user_sees_on_the_image_left(face: np.ndarray) -> None:
    assert (face[FIRST, 0] > face[SECOND, 0]).all()  # the character's right is on image right
    dragged = face.copy()
    dragged[FIRST[0]] += (20.0, 0.0)
    out = mirror_side(dragged, keep="image_left")
    np.testing.assert_array_equal(out[SECOND], face[SECOND])
    np.testing.assert_allclose(out, face, atol=1e-9)


def test_mirror_refuses_bad_input_and_does_not_modify_it() -> None:
    face = mean_face(SIZE)
    face[36] += 10.0
    before = face.copy()
    mirror_side(face, keep="image_right")
    np.testing.assert_array_equal(face, before)
    with pytest.raises(ValueError, match="keep"):
        mirror_side(face, keep="left")  # type: ignore[arg-type]
    with pytest.raises(InvalidLandmarksError):
        mirror_side(np.zeros((NUM_POINTS, 2)), keep="image_left")
    with pytest.raises(InvalidLandmarksError):
        mirror_side(face[:60], keep="image_left")
    face[3, 0] = np.nan
    with pytest.raises(InvalidLandmarksError):
        mirror_side(face, keep="image_left")


# --- labels -------------------------------------------------------------------------------------


def test_point_labels_examples_and_numbering() -> None:
    labels = point_labels()
    assert len(labels) == NUM_POINTS and len(set(labels)) == NUM_POINTS
    assert labels[36] == "37 right eye: outer corner"
    assert labels[8] == "9 jaw: chin"
    assert labels[30] == "31 nose: tip"
    assert labels[48] == "49 outer lips: right corner"
    assert labels[39] == "40 right eye: inner corner"
    assert labels[42] == "43 left eye: inner corner"
    assert labels[45] == "46 left eye: outer corner"
    assert labels[27].startswith("28 nose: bridge top")
    assert "cupid" in labels[51] and "bottom centre" in labels[57]
    assert "columella" in labels[33]
    assert all(label.startswith(f"{i + 1} ") for i, label in enumerate(labels))


def test_point_labels_agree_with_the_schema_and_the_mirror_pairs() -> None:
    labels = point_labels()
    groups = {
        "jaw": "face_boundary",
        "right brow": "eyebrows",
        "left brow": "eyebrows",
        "nose": "nose",
        "right eye": "eyes",
        "left eye": "eyes",
        "outer lips": "mouth",
        "inner lips": "mouth",
    }
    for i, label in enumerate(labels):
        assert groups[label.split(" ", 1)[1].split(":")[0]] == part_of(i), label

    def text(i: int) -> str:
        return labels[i].split(" ", 1)[1]

    for a, b in MIRROR_PAIRS:
        assert "right" in text(a) and "left" not in text(a), labels[a]
        assert text(a).replace("right", "left") == text(b), (labels[a], labels[b])
    for i in MIDLINE:
        assert "right" not in text(i) and "left" not in text(i), labels[i]


# --- undo history ------------------------------------------------------------------------------


def test_history_records_changes_only() -> None:
    face = mean_face(SIZE)
    history = EditHistory()
    assert history.current is None and not history.can_undo and len(history) == 0
    assert history.record(face)
    assert not history.record(face.copy())
    assert not history.record(face + 1e-7)
    moved = face.copy()
    moved[5] += 1e-3
    assert history.record(moved)
    assert len(history) == 2 and history.can_undo
    np.testing.assert_array_equal(history.current, moved)


def test_history_undo_steps_back_and_stops_at_the_first_state() -> None:
    states = [mean_face(SIZE) + k for k in range(3)]
    history = EditHistory()
    for s in states:
        history.record(s)
    np.testing.assert_array_equal(history.undo(), states[1])
    np.testing.assert_array_equal(history.current, states[1])
    np.testing.assert_array_equal(history.undo(), states[0])
    assert not history.can_undo
    assert history.undo() is None
    np.testing.assert_array_equal(history.current, states[0])
    assert EditHistory().undo() is None


def test_history_holds_copies() -> None:
    face = mean_face(SIZE)
    history = EditHistory()
    history.record(face)
    face[0] += 50.0  # the caller's array changes after recording
    current = history.current
    assert current is not None
    current[1] += 50.0  # and so does the copy handed out
    np.testing.assert_array_equal(history.current, mean_face(SIZE))


def test_history_is_bounded_dropping_the_oldest() -> None:
    history = EditHistory(limit=3)
    for k in range(5):
        history.record(mean_face(SIZE) + k)
    assert len(history) == 3
    np.testing.assert_array_equal(history.undo(), mean_face(SIZE) + 3)
    np.testing.assert_array_equal(history.undo(), mean_face(SIZE) + 2)
    assert history.undo() is None
    with pytest.raises(ValueError):
        EditHistory(limit=0)


def test_history_reset() -> None:
    history = EditHistory()
    history.record(mean_face(SIZE))
    history.record(mean_face(SIZE) + 1)
    history.reset()
    assert len(history) == 0 and history.current is None and not history.can_undo
    history.reset(mean_face(SIZE) + 2)
    assert len(history) == 1 and not history.can_undo
    np.testing.assert_array_equal(history.current, mean_face(SIZE) + 2)
    with pytest.raises(InvalidLandmarksError):
        history.record(np.zeros((5, 2)))


# --- clamping ----------------------------------------------------------------------------------


def test_clamp_leaves_points_inside_alone_and_never_yields_invalid_landmarks() -> None:
    width, height = 400, 300
    face = mean_face(300)
    np.testing.assert_array_equal(clamp_to_image(face, (width, height)), face)
    wild = face.copy()
    wild[0] = (-1e4, -1e4)
    wild[1] = (1e4, 1e4)
    wild[2] = (-150.0, 200.0)  # beyond the image, but within what landmarks may be
    before = wild.copy()
    with pytest.raises(InvalidLandmarksError):
        FaceLandmarks(wild, (width, height))
    out = clamp_to_image(wild, (width, height))
    np.testing.assert_array_equal(wild, before)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[0], (-200.0, -150.0))
    np.testing.assert_array_equal(out[1], (600.0, 450.0))
    np.testing.assert_array_equal(out[2], wild[2])
    np.testing.assert_array_equal(out[3:], face[3:])
    FaceLandmarks(out, (width, height))  # accepted


def test_clamp_refuses_bad_input() -> None:
    with pytest.raises(InvalidLandmarksError):
        clamp_to_image(mean_face(SIZE), (0, 100))
    face = mean_face(SIZE)
    face[0, 0] = np.inf
    with pytest.raises(InvalidLandmarksError):
        clamp_to_image(face, (SIZE, SIZE))
