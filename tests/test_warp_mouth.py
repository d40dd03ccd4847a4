"""The mouth interior: painted inside the inner lips only, shaded, carried by the lips.

The astronaut smiles with her upper teeth showing (a reference with its own interior); with her
inner lips put together she is a reference with a closed mouth; the cat has a closed mouth.
Landmark motion is made here, valid by construction: the inner lips part or close along the
face's down direction, the lower lip and jaw follow.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceshot_backends.warp_engine import CONTOURS, LandmarkWarper
from faceshot_core.synthetic_faces import face_down, mean_face, rigid, with_mouth_open

_INNER = list(CONTOURS["inner_lips"])
_PAIRS = ((61, 67), (62, 66), (63, 65))


@pytest.fixture(scope="module")
def astronaut_points(astronaut: np.ndarray) -> np.ndarray:
    from faceshot.pipeline import detect_reference

    return detect_reference(astronaut).points.astype(np.float64)


@pytest.fixture(scope="module")
def closed_points(astronaut_points: np.ndarray) -> np.ndarray:
    closed = astronaut_points.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]  # lips touching
    return closed


def _close(points: np.ndarray, amount: float) -> np.ndarray:
    """The inner lips moved towards each other by ``amount`` of their gap (1: touching)."""
    out = points.copy()
    down = face_down(points)
    gaps = [float((points[lo] - points[up]) @ down) for up, lo in _PAIRS]
    for (up, lo), gap in zip(_PAIRS, gaps, strict=True):
        out[up] += down * gap * amount / 2
        out[lo] -= down * gap * amount / 2
    lift = down * float(np.mean(gaps)) * amount / 2
    out[[55, 56, 57, 58, 59]] -= lift
    out[0:17] -= np.clip(1.0 - np.abs(np.arange(17) - 8) / 6.0, 0.0, 1.0)[:, None] * 0.6 * lift
    return out


def _inner_polygon_mask(warper: LandmarkWarper, points: np.ndarray, grow: int) -> np.ndarray:
    poly = warper.vertices_for(points)[_INNER]
    mask = np.zeros(warper.image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.rint(poly * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return cv2.dilate(mask, np.ones((2 * grow + 1,) * 2, np.uint8)).astype(bool)


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)


def _at(image: np.ndarray, xy: np.ndarray) -> float:
    return float(_luma(image)[round(float(xy[1])), round(float(xy[0]))])


@pytest.mark.parametrize("which", ["open reference", "closed reference"])
@pytest.mark.parametrize("motion", ["open", "open and turn", "half closed"])
def test_interior_stays_inside_the_inner_lips(
    astronaut, astronaut_points, closed_points, which, motion
) -> None:
    ref = astronaut_points if which == "open reference" else closed_points
    points = {
        "open": with_mouth_open(ref, 0.4),
        "open and turn": rigid(with_mouth_open(ref, 0.25), 0.08, (6.0, -4.0)),
        "half closed": _close(with_mouth_open(ref, 0.1), 0.5),
    }[motion]
    painted = LandmarkWarper(astronaut, ref).render(points)
    plain = LandmarkWarper(astronaut, ref, mouth_interior=False).render(points)
    changed = (painted != plain).any(axis=2)
    assert changed.any()
    outside = ~_inner_polygon_mask(LandmarkWarper(astronaut, ref), points, grow=2)
    assert not (changed & outside).any(), np.argwhere(changed & outside)[:5]


def test_cavity_is_shaded_darker_at_the_back(astronaut, closed_points) -> None:
    opened = with_mouth_open(closed_points, 0.45)
    out = LandmarkWarper(astronaut, closed_points, teeth=False).render(opened)
    middle = (opened[62] + opened[66]) / 2
    down = face_down(closed_points)
    near_lower_lip = opened[66] - 2.5 * down
    near_upper_lip = opened[62] + 2.5 * down
    assert _at(out, middle) < 45  # the back of the mouth is dark
    assert _at(out, near_lower_lip) > _at(out, middle) + 12  # and lighter near the lips
    assert _at(out, near_upper_lip) > _at(out, middle) + 12
    inside = _inner_polygon_mask(LandmarkWarper(astronaut, closed_points), opened, grow=-0)
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert _luma(out)[inside].std() > 6  # shaded, not a flat polygon


def _mouth_with_teeth() -> tuple[np.ndarray, np.ndarray]:
    """A drawn face with an open mouth: white upper teeth, a dark line, grey lower teeth.

    Rows are measured from the upper inner lip down to the lower one (the mean face is upright):
    the first 60 % upper teeth, then a dark gap, then 25 % lower teeth.
    """
    ref = with_mouth_open(mean_face(256), 0.35)
    image = np.full((256, 256, 3), (200, 160, 140), np.uint8)
    mask = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(mask, [np.rint(ref[60:68]).astype(np.int32)], 1)
    top, bottom = ref[[61, 62, 63]][:, 1].mean(), ref[[65, 66, 67]][:, 1].mean()
    t = (np.arange(256)[:, None] - top) / (bottom - top)
    colour = np.where(t < 0.6, 245, np.where(t < 0.75, 20, 150))[..., None]
    image[mask.astype(bool)] = np.broadcast_to(colour, (256, 256, 1))[mask.astype(bool)]
    return image, ref


def test_upper_teeth_ride_the_upper_lip_and_lower_the_lower() -> None:
    image, ref = _mouth_with_teeth()
    opened = with_mouth_open(ref, 0.35)  # the lower lip drops, the upper stays
    out = LandmarkWarper(image, ref).render(opened)
    gap = float(opened[66, 1] - opened[62, 1])
    ref_gap = float(ref[66, 1] - ref[62, 1])
    x = round(float(opened[62, 0]))
    column = _luma(out)[:, x]
    upper_teeth = column[round(opened[62, 1] + 0.3 * ref_gap)]
    lower_teeth = column[round(opened[66, 1] - 0.12 * ref_gap)]
    middle = column[round(opened[62, 1] + 0.5 * gap)]
    assert upper_teeth > 230  # white, right under the upper lip
    assert 120 < lower_teeth < 180  # grey, right above the dropped lower lip
    assert middle < 60  # the cavity opened between them
    # The plain warp stretches the teeth instead: grey and dark smeared over the opening.
    plain = _luma(LandmarkWarper(image, ref, mouth_interior=False).render(opened))[:, x]
    assert plain[round(opened[62, 1] + 0.5 * gap)] > 100


def test_closing_slides_the_teeth_behind_the_lips(astronaut, astronaut_points) -> None:
    # Closing halfway, the upper teeth stay whole under the upper lip (in front of the lower
    # teeth), instead of being squashed into a zig-zag between the lips.
    closing = _close(astronaut_points, 0.5)
    warper = LandmarkWarper(astronaut, astronaut_points)
    out = warper.render(closing).astype(np.float64)
    down = face_down(astronaut_points)
    shift = closing[62] - astronaut_points[62]
    inside = _inner_polygon_mask(warper, closing, grow=0)
    inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ys, xs = np.nonzero(inside)
    assert len(ys) > 20
    src = np.rint(np.stack([xs, ys], axis=1) - shift).astype(int)
    carried = astronaut[src[:, 1], src[:, 0]].astype(np.float64)
    assert np.abs(out[ys, xs] - carried).mean() < 12
    assert _luma(out.astype(np.uint8))[inside].mean() > 120  # teeth, no dark gap
    del down


def test_closed_mouth_gets_a_lip_line(astronaut, astronaut_points) -> None:
    closed = _close(astronaut_points, 1.0)
    shaded = LandmarkWarper(astronaut, astronaut_points).render(closed)
    plain = LandmarkWarper(astronaut, astronaut_points, mouth_interior=False).render(closed)
    line = (closed[62] + closed[66]) / 2
    assert _at(shaded, line) < _at(plain, line) - 15
