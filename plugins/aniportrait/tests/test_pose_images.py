"""Pose images in AniPortrait's training style, checked on the cat and on synthetic faces.

Each test states a property of the drawing the PoseGuider was trained on (palette, parts where
their landmarks are, no nose, closed loops, the oval up to the temples, two lines per brow)
and checks it at pixels of the rendered image, so that the checks do not depend on how the
curves are computed.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from faceshot_aniportrait.pose_images import (
    BROWS,
    DRAW_ORDER,
    EYE_LIDS,
    PALETTE,
    brow_curves,
    draw_pose,
    face_frame,
    pose_curves,
    pose_images,
    smooth_curve,
    to_network,
)

from faceshot_core.sample_data import chelsea_landmarks
from faceshot_core.synthetic_faces import mean_face, rigid, with_mouth_open

SIZE = (512, 512)
BLACK = (0, 0, 0)

#: Landmarks strictly inside each part's run (its ends are shared with a neighbouring part).
INSIDE: dict[str, tuple[int, ...]] = {
    "face_oval": tuple(range(17)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "right_brow": BROWS["right_brow"],
    "left_brow": BROWS["left_brow"],
    "lips_outer_top_left": (49, 50),
    "lips_outer_top_right": (52, 53),
    "lips_outer_bottom_left": (59, 58),
    "lips_outer_bottom_right": (56, 55),
    "lips_inner_top_left": (61,),
    "lips_inner_top_right": (63,),
    "lips_inner_bottom_left": (67,),
    "lips_inner_bottom_right": (65,),
}
OUTER_LIPS = [name for name in PALETTE if name.startswith("lips_outer")]
INNER_LIPS = [name for name in PALETTE if name.startswith("lips_inner")]


def _cat() -> np.ndarray:
    """faceshot's hand-placed cat landmarks (451x300 photo) stretched to 512x512."""
    face = chelsea_landmarks()
    return face.points.astype(np.float64) * np.array([512 / 451, 512 / 300])


def _human() -> np.ndarray:
    return with_mouth_open(mean_face(512), 0.3)


FACES = {
    "cat": _cat(),
    "human": _human(),
    "tilted": rigid(_human(), 0.5),
    "upside_down": rigid(_human(), np.pi, centre=(256.0, 256.0)),
}


@pytest.fixture(scope="module", params=list(FACES))
def drawn(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    points = FACES[request.param]
    return points, draw_pose(points, SIZE)


def _parts(image: np.ndarray) -> np.ndarray:
    """Per pixel, the index in DRAW_ORDER of the part whose colour it has (-1: black)."""
    packed = image.astype(np.int64) @ np.array([65536, 256, 1])
    labels = np.full(packed.shape, -1, dtype=np.int64)
    for k, name in enumerate(DRAW_ORDER):
        r, g, b = PALETTE[name]
        labels[packed == (r << 16) | (g << 8) | b] = k
    return labels


def _mask(image: np.ndarray, colours: list[str] | str) -> np.ndarray:
    names = [colours] if isinstance(colours, str) else colours
    return np.isin(_parts(image), [DRAW_ORDER.index(n) for n in names])


def _near(mask: np.ndarray, xy: np.ndarray, radius: int = 1) -> np.ndarray:
    """Whether ``mask`` is set within ``radius`` pixels of each point (``[2]`` or ``[N, 2]``;
    points off the image are never near)."""
    side = 2 * radius + 1
    wide = cv2.dilate(mask.astype(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
    pts = np.floor(np.atleast_2d(xy)).astype(np.int64)
    h, w = mask.shape
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    hit = np.zeros(len(pts), dtype=bool)
    hit[ok] = wide[pts[ok, 1], pts[ok, 0]]
    return hit if np.ndim(xy) == 2 else hit[0]


def _colours(image: np.ndarray) -> set[tuple[int, int, int]]:
    packed = np.unique(image.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1]))
    return {(int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in packed}


def test_only_palette_colours_all_of_them_and_exact(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    """8-connected lines without antialiasing: every pixel is black or one palette colour."""
    _, image = drawn
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert _colours(image) == {BLACK, *PALETTE.values()}
    assert len(set(PALETTE.values())) == len(PALETTE) == 13


def test_every_part_is_drawn_on_its_landmarks(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    points, image = drawn
    for name, indices in INSIDE.items():
        mask = _mask(image, name)
        missing = [i for i, near in zip(indices, _near(mask, points[list(indices)]), strict=True)
                   if not near]  # fmt: skip
        assert not missing, f"{name} not drawn at landmarks {missing}"


def test_every_line_is_drawn_along_its_whole_length(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    """Pixels sampled along each line have its colour, or that of a part drawn later where the
    two meet (the inner lips at the corners), as upstream's drawing order has it."""
    points, image = drawn
    parts = _parts(image)
    for name, curve, _closed in pose_curves(points):
        own = parts == DRAW_ORDER.index(name)
        later = parts >= DRAW_ORDER.index(name)
        inside = curve[((curve >= 0) & (curve < 512)).all(axis=1)]
        assert _near(own, inside).mean() > 0.85, name
        assert _near(later, inside).all(), name


def test_right_eye_and_brow_are_image_left_on_an_upright_face() -> None:
    image = draw_pose(_human(), SIZE)
    for right, left in (("right_eye", "left_eye"), ("right_brow", "left_brow")):
        assert (
            np.nonzero(_mask(image, right))[1].max() < 256 < np.nonzero(_mask(image, left))[1].min()
        )


def test_nothing_is_drawn_on_the_nose(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    points, image = drawn
    ink = image.any(axis=-1)
    inked = [27 + i for i in np.flatnonzero(_near(ink, points[27:36], radius=5))]
    assert not inked, f"something drawn within 5 px of nose landmarks {inked}"


def _enclosed(wall: np.ndarray, seed: np.ndarray) -> np.ndarray | None:
    """The 4-connected region around ``seed`` bounded by ``wall``; None if it leaks out."""
    canvas = np.where(wall, 255, 0).astype(np.uint8)
    x, y = (int(v) for v in np.floor(seed))
    assert canvas[y, x] == 0, "seed lies on the line"
    cv2.floodFill(canvas, None, (x, y), 128, flags=4)
    region = canvas == 128
    edges = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
    return None if edges else region


def _polygon_area(points: np.ndarray) -> float:
    return float(cv2.contourArea(points.astype(np.float32)))


def test_eye_loops_are_closed(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    points, image = drawn
    for name, (upper, lower) in EYE_LIDS.items():
        loop = points[list(upper[:-1] + lower[:-1])]
        region = _enclosed(_mask(image, name), loop.mean(axis=0))
        assert region is not None, f"{name} is not a closed loop"
        assert 0.4 < region.sum() / _polygon_area(loop) < 1.5


def test_outer_and_inner_lip_loops_are_closed(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    points, image = drawn
    outer = _enclosed(_mask(image, OUTER_LIPS), points[60:68].mean(axis=0))
    assert outer is not None, "the outer lips are not a closed loop"
    inner_pts = points[60:68]
    if _polygon_area(inner_pts) > 300:  # an open mouth: the inner lips enclose the gap too
        inner = _enclosed(_mask(image, INNER_LIPS), inner_pts[[1, 2, 3, 5, 6, 7]].mean(axis=0))
        assert inner is not None, "the inner lips are not a closed loop"
        assert 0.4 < inner.sum() / _polygon_area(inner_pts) < 1.5


def test_oval_reaches_the_temples_above_eyes_and_brows(
    drawn: tuple[np.ndarray, np.ndarray],
) -> None:
    """Measured along the face's own up direction, so tilted and upside-down faces count."""
    points, image = drawn
    _, down, _ = face_frame(points)

    def highest(names: list[str]) -> float:
        ys, xs = np.nonzero(_mask(image, names))
        return float((np.stack([xs, ys], axis=1) @ -down).max())

    oval = highest(["face_oval"])
    assert oval > highest(["right_eye", "left_eye"])
    assert oval > highest(["right_brow", "left_brow"])
    assert oval > float((points[[0, 16]] @ -down).max()) + 10  # beyond the 68-point jaw


def test_each_brow_is_two_lines() -> None:
    """A column through the middle of an upright brow meets its colour twice before the eye."""
    points = _human()
    image = draw_pose(points, SIZE)
    for name, (eye, _) in zip(BROWS, EYE_LIDS.items(), strict=True):
        x, y_top = int(points[BROWS[name][2], 0]), int(points[BROWS[name][2], 1]) - 6
        y_eye = int(np.nonzero(_mask(image, eye)[:, x])[0].min())
        column = _mask(image, name)[y_top:y_eye, x].astype(np.int8)
        runs = int((np.diff(np.concatenate([[0], column])) == 1).sum())
        assert runs == 2, f"{name}: {runs} lines in the column"
        upper, lower = brow_curves(points, name)
        assert lower[:, 1].mean() > upper[:, 1].mean()  # the second line lies below the first


def test_a_half_turn_of_the_face_turns_the_drawing() -> None:
    """The parts follow the face, not the image: the drawing of a face turned 180 degrees is the
    drawing turned 180 degrees, up to the one-pixel shifts of flooring."""
    points = _human()
    upright = draw_pose(points, SIZE)
    turned = draw_pose(rigid(points, np.pi, centre=(256.0, 256.0)), SIZE)
    for name in DRAW_ORDER:
        a = np.rot90(_mask(upright, name), 2)
        b = _mask(turned, name)
        a_wide = cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert (b & a_wide).sum() / b.sum() > 0.95, name


def test_landmarks_outside_the_image_are_clipped_not_fatal() -> None:
    points = _human()
    half_out = draw_pose(points - [300.0, 0.0], SIZE)
    assert half_out[:, 300:].sum() == 0 and half_out[:, :200].any()
    assert not draw_pose(points + 5000.0, SIZE).any()
    huge = draw_pose(points * 1e12, SIZE)
    assert _colours(huge) <= {BLACK, *PALETTE.values()}
    assert draw_pose(points, (1, 1)).shape == (1, 1, 3)
    assert not draw_pose(np.zeros((68, 2)) - 50.0, SIZE).any()  # a face collapsed off-image
    with pytest.raises(ValueError, match="finite"):
        draw_pose(np.where(np.arange(68)[:, None] == 3, np.nan, points), SIZE)
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        draw_pose(points[:60], SIZE)


def test_pose_images_stack_the_frames_at_any_size() -> None:
    points = _human() * [320 / 512, 200 / 512]
    sequence = np.stack([points, with_mouth_open(points, 0.5), points + np.array([10.0, 0.0])])
    images = pose_images(sequence, (320, 200))
    assert images.shape == (3, 200, 320, 3) and images.dtype == np.uint8
    for k in range(3):
        np.testing.assert_array_equal(images[k], draw_pose(sequence[k], (320, 200)))
    assert not np.array_equal(images[0], images[1])
    assert pose_images(np.zeros((0, 68, 2)), (320, 200)).shape == (0, 200, 320, 3)
    with pytest.raises(ValueError, match=r"\[T, 68, 2\]"):
        pose_images(points, (320, 200))


def test_to_network_gives_minus_one_to_one_in_channel_order() -> None:
    images = pose_images(np.stack([_cat(), _human()]), SIZE)
    x = to_network(images)
    assert x.shape == (2, 3, 512, 512) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) <= 1.0
    ys, xs = np.nonzero(_mask(images[1], "right_eye"))
    expected = torch.tensor(PALETTE["right_eye"], dtype=torch.float32) / 127.5 - 1.0
    torch.testing.assert_close(x[1, :, ys[0], xs[0]], expected)
    white = to_network(np.full((4, 5, 3), 255, dtype=np.uint8))  # one image, [H, W, 3]
    assert white.shape == (1, 3, 4, 5) and bool((white == 1.0).all())
    assert to_network(images, dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="uint8"):
        to_network(images.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        to_network(images[..., :2])


def test_smooth_curve_runs_through_its_points_in_short_steps() -> None:
    rng = np.random.default_rng(3)
    points = np.cumsum(rng.uniform(-30, 30, (9, 2)), axis=0)
    points[4] = points[3]  # coincident points (a shut eye, a closed mouth) stay finite
    curve = smooth_curve(points, spacing=3.0)
    assert np.isfinite(curve).all()
    for p in points:
        assert np.min(np.linalg.norm(curve - p, axis=1)) < 1e-9
    np.testing.assert_allclose(curve[[0, -1]], points[[0, -1]])
    steps = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    assert steps.max() < 3.0 * 1.6  # chord-based spacing, a little longer on the bends
    line = smooth_curve(np.array([[0.0, 0.0], [10.0, 5.0], [40.0, 20.0]]))
    np.testing.assert_allclose(line[:, 1], line[:, 0] / 2, atol=1e-9)  # collinear stays straight
