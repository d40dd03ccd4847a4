"""Pose images: 68 landmarks drawn the way AniPortrait's PoseGuider saw faces in training.

AniPortrait was trained on mediapipe face-mesh drawings: coloured lines (no dots) 2 pixels
thick on a black 512x512 canvas, one colour per facial part, lips split into eight coloured
quarters, no nose and no irises.  The PoseGuider has only ever seen that picture, so this module
redraws faceshot's iBUG 68-point landmarks in the same palette and line style:

* **jaw** - mediapipe's face oval runs from temple to temple, higher than the 68-point jaw (which
  stops near the eyes), so the jaw is extended up to just above the brows (:func:`jaw_curve`);
* **brows** - mediapipe outlines each brow with two lines (upper and lower edge); the 68 points
  trace the upper edge, and the lower one is placed below it at mediapipe's proportions;
* **eyes** - closed loops, the lids meeting at sharp corners;
* **lips** - outer and inner contours, each split at the corners and the midline into the
  eight coloured quarters;
* every contour is resampled along a centripetal Catmull-Rom spline through its points, so the
  sparse 68 points give curves as smooth as mediapipe's dense mesh outlines.

Lines are drawn like mediapipe's ``drawing_utils`` draws connections: ``cv2.line`` segments
(here one ``cv2.polylines`` call per curve, the same rasteriser) with the default 8-connected
line type and coordinates floored to whole pixels - no antialiasing, so every drawn pixel has
exactly one palette colour.  Images are RGB: colour tuples are channel values in channel order,
as upstream writes them into its arrays and as its training loader feeds them to the network.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import torch

Colour = tuple[int, int, int]
Points = npt.NDArray[np.float64]

#: The palette, per facial part, as RGB (channel order 0, 1, 2).  "right"/"left" are the
#: subject's sides, as in mediapipe: the right eye and brow are on the image's left.  Lip
#: quarters: "left" is the image-left half (from the image-left corner to the midline).
PALETTE: dict[str, Colour] = {
    "face_oval": (10, 200, 10),
    "left_eye": (180, 200, 10),
    "left_brow": (180, 220, 10),
    "right_eye": (10, 200, 180),
    "right_brow": (10, 220, 180),
    "lips_outer_bottom_left": (10, 180, 20),
    "lips_outer_bottom_right": (20, 10, 180),
    "lips_inner_bottom_left": (100, 100, 30),
    "lips_inner_bottom_right": (100, 150, 50),
    "lips_outer_top_left": (20, 80, 100),
    "lips_outer_top_right": (80, 100, 20),
    "lips_inner_top_left": (120, 100, 200),
    "lips_inner_top_right": (150, 120, 100),
}

#: Upstream draws the parts in this order (its connection table's), so where two parts touch -
#: the lip quarters at the corners and midlines - the later one is the colour on top.
DRAW_ORDER: tuple[str, ...] = tuple(PALETTE)

#: The jaw, image-left (subject's right ear) round the chin to image-right.
JAW: tuple[int, ...] = tuple(range(17))

#: The brows, each listed from its outer end to its inner end (so :data:`BROW_DEPTH` applies to
#: both the same way).  The 68 points follow the brow's upper edge.
BROWS: dict[str, tuple[int, ...]] = {
    "right_brow": (17, 18, 19, 20, 21),
    "left_brow": (26, 25, 24, 23, 22),
}

#: The eyes as two lids from corner to corner (upper, then lower back to the first corner).
#: Each lid is smoothed on its own so the corners stay sharp, then the two close the loop.
EYE_LIDS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "right_eye": ((36, 37, 38, 39), (39, 40, 41, 36)),
    "left_eye": ((42, 43, 44, 45), (45, 46, 47, 42)),
}

#: The lip contours, each from the image-left corner to the image-right corner, smoothed as one
#: curve and split at its midline point into the image-left and image-right quarters.
LIP_CONTOURS: tuple[tuple[tuple[int, ...], int, str, str], ...] = (
    ((48, 49, 50, 51, 52, 53, 54), 51, "lips_outer_top_left", "lips_outer_top_right"),
    ((48, 59, 58, 57, 56, 55, 54), 57, "lips_outer_bottom_left", "lips_outer_bottom_right"),
    ((60, 61, 62, 63, 64), 62, "lips_inner_top_left", "lips_inner_top_right"),
    ((60, 67, 66, 65, 64), 66, "lips_inner_bottom_left", "lips_inner_bottom_right"),
)

#: Line thickness in pixels of the image drawn (upstream: 2 on its 512x512 canvas).
THICKNESS = 2

#: Largest distance in pixels between consecutive samples of a smoothed curve, and the most
#: samples one span between two landmarks gets (faces far larger than any image - wild
#: landmarks - get coarser curves instead of unbounded memory).
SAMPLE_SPACING = 3.0
MAX_SPAN_SAMPLES = 128

# The proportions below are read off mediapipe's canonical face model and expressed in eye
# widths (the distance between one eye's corners), a length that any 68-point face has.

#: How far above the highest brow point the extended jaw ends (mediapipe's oval ends at the
#: temples, about 0.12 eye widths above the brow's peak).
TEMPLE_MARGIN = 0.12

#: How much the extended jaw bends inwards as it rises: ``TEMPLE_CURVE * rise**2 / eye_width``
#: (the canonical oval moves in by 0.07 eye widths over the first 0.68 of rise above the 68-point
#: jaw's end and by 0.25 over 1.19, a parabola to within a few hundredths).
TEMPLE_CURVE = 0.17

#: Distance from each brow point (outer to inner) down to the brow's lower edge, in eye widths
#: (canonical model: 0.14, 0.19, 0.23, 0.22, 0.34; the brow is thickest at its inner end).
BROW_DEPTH: tuple[float, ...] = (0.14, 0.19, 0.23, 0.22, 0.34)

#: Eye centre distance over eye width in the canonical model; gives a scale when eyes collapse.
EYE_SPACING_IN_WIDTHS = 2.46


def _checked(points: npt.ArrayLike) -> Points:
    """``[68, 2]`` float64 copy; non-finite landmarks cannot be placed, so they are refused."""
    p = np.array(points, dtype=np.float64)
    if p.shape != (68, 2):
        raise ValueError(f"expected landmarks [68, 2], got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("landmarks must be finite")
    return p


def face_frame(points: npt.ArrayLike) -> tuple[Points, Points, float]:
    """``(across, down, eye_width)``: the face's own axes and scale.

    ``across`` is the unit vector from the right eye's centre (image-left) to the left eye's;
    ``down`` is ``across`` turned a quarter towards +y (forehead to chin for an upright face).
    Following the face rather than the image keeps the extended jaw and the lower brow edges
    where they belong on tilted heads.  ``eye_width`` is the mean corner-to-corner width of the
    two eyes (from the eye spacing when the eyes have collapsed to points; 0 for a face with no
    extent at all).
    """
    p = _checked(points)
    across = p[42:48].mean(axis=0) - p[36:42].mean(axis=0)
    spacing = float(np.hypot(*across))
    if spacing < 1e-9:
        across = p[16] - p[0]
        spacing = float(np.hypot(*across))
    unit = across / spacing if spacing >= 1e-9 else np.array([1.0, 0.0])
    down = np.array([-unit[1], unit[0]])
    width = 0.5 * float(np.hypot(*(p[39] - p[36])) + np.hypot(*(p[45] - p[42])))
    if width < 1e-9:
        width = spacing / EYE_SPACING_IN_WIDTHS
    return unit, down, width


def smooth_curve(points: npt.ArrayLike, spacing: float = SAMPLE_SPACING) -> Points:
    """Samples ``[M, 2]`` of the centripetal Catmull-Rom spline through ``points`` ``[N, 2]``.

    The curve passes through every point, starting at the first and ending on the last; each
    span is cut into pieces of at most ``spacing`` (measured on its chord; at most
    :data:`MAX_SPAN_SAMPLES` pieces).  Centripetal knots (square roots of the chord lengths)
    never overshoot into loops or cusps, so unevenly spaced or coincident points - a closed
    mouth, a shut eye - give a clean curve.  The ends are continued by mirroring the
    neighbouring point.
    """
    return _spline(points, spacing)[0]


def _spline(points: npt.ArrayLike, spacing: float) -> tuple[Points, npt.NDArray[np.int64]]:
    """:func:`smooth_curve`'s samples and, for each given point, the index of its sample."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 3:
        return p.copy(), np.arange(len(p))
    ctrl = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    p0, p1, p2, p3 = ctrl[:-3], ctrl[1:-2], ctrl[2:-1], ctrl[3:]
    d01, d12, d23 = (np.maximum(np.linalg.norm(b - a, axis=1) ** 0.5, 1e-9)
                     for a, b in ((p0, p1), (p1, p2), (p2, p3)))  # fmt: skip
    chord = np.linalg.norm(p2 - p1, axis=1)
    counts = np.clip(np.ceil(chord / spacing), 1, MAX_SPAN_SAMPLES).astype(np.int64)
    seg = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    frac = (np.arange(int(counts.sum())) - first) / counts[seg]
    # Knots per span: t0 = 0, t1 = d01, t2 = t1 + d12, t3 = t2 + d23; t runs over [t1, t2).
    t0 = np.zeros(len(seg))
    t1 = d01[seg]
    t2 = t1 + d12[seg]
    t3 = t2 + d23[seg]
    t = (t1 + frac * d12[seg])[:, None]
    t0, t1, t2, t3 = (k[:, None] for k in (t0, t1, t2, t3))
    q0, q1, q2, q3 = p0[seg], p1[seg], p2[seg], p3[seg]
    a1 = ((t1 - t) * q0 + (t - t0) * q1) / (t1 - t0)
    a2 = ((t2 - t) * q1 + (t - t1) * q2) / (t2 - t1)
    a3 = ((t3 - t) * q2 + (t - t2) * q3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    c = ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)
    return np.concatenate([c, p[-1:]]), np.concatenate([[0], np.cumsum(counts)])


def _temple(points: Points, end: int, inner: int, outward: Points, up: Points, width: float,
            top: float) -> Points:  # fmt: skip
    """Two points continuing the jaw from ``end`` up to height ``top`` (halfway and at the top).

    The continuation leaves in the jaw's own direction (its sideways lean per unit of rise,
    from ``inner`` to ``end``, limited to +-0.5) and bends inwards as the head narrows towards
    the temples (:data:`TEMPLE_CURVE`).  Nothing is added when the jaw already reaches ``top``.
    """
    rise = top - float(points[end] @ up)
    if rise <= 0.0:
        return np.zeros((0, 2))
    step = points[end] - points[inner]
    climb = float(step @ up)
    lean = float(np.clip(step @ outward / climb, -0.5, 0.5)) if climb > 1e-9 else 0.0
    gains = np.array([0.5, 1.0]) * rise
    sideways = lean * gains - TEMPLE_CURVE * gains**2 / width
    return points[end] + gains[:, None] * up + sideways[:, None] * outward


def jaw_curve(points: npt.ArrayLike) -> Points:
    """The face oval: the jaw 0-16 extended at both ends to temple height, smoothed.

    Temple height is :data:`TEMPLE_MARGIN` eye widths above the highest brow point, measured
    along the face's own up direction.
    """
    p = _checked(points)
    across, down, width = face_frame(p)
    jaw = p[list(JAW)]
    if width < 1e-9:
        return smooth_curve(jaw)
    up = -down
    top = float((p[17:27] @ up).max()) + TEMPLE_MARGIN * width
    right = _temple(p, JAW[0], JAW[1], -across, up, width, top)
    left = _temple(p, JAW[-1], JAW[-2], across, up, width, top)
    return smooth_curve(np.concatenate([right[::-1], jaw, left]))


def brow_curves(points: npt.ArrayLike, name: str) -> tuple[Points, Points]:
    """The brow ``name`` (a key of :data:`BROWS`) as its upper and lower edge, smoothed.

    The upper edge runs through the 68 points; the lower edge is the same points moved down
    the face by :data:`BROW_DEPTH` eye widths.
    """
    p = _checked(points)
    _, down, width = face_frame(p)
    upper = p[list(BROWS[name])]
    lower = upper + np.asarray(BROW_DEPTH)[:, None] * width * down
    return smooth_curve(upper), smooth_curve(lower)


def pose_curves(points: npt.ArrayLike) -> list[tuple[str, Points, bool]]:
    """Every line of the drawing as ``(part, samples [M, 2], closed)`` in drawing order.

    ``part`` is a key of :data:`PALETTE`; a part may have several lines (brows have two).
    """
    p = _checked(points)
    lines: dict[str, list[tuple[Points, bool]]] = {name: [] for name in DRAW_ORDER}
    lines["face_oval"].append((jaw_curve(p), False))
    for name, (upper, lower) in EYE_LIDS.items():
        loop = np.concatenate([smooth_curve(p[list(upper)]), smooth_curve(p[list(lower)])[1:-1]])
        lines[name].append((loop, True))
    for name in BROWS:
        lines[name].extend((edge, False) for edge in brow_curves(p, name))
    for contour, middle, left, right in LIP_CONTOURS:
        curve, knots = _spline(p[list(contour)], SAMPLE_SPACING)
        split = int(knots[contour.index(middle)])
        lines[left].append((curve[: split + 1], False))
        lines[right].append((curve[split:], False))
    return [(name, curve, closed) for name in DRAW_ORDER for curve, closed in lines[name]]


def _pixels(curve: Points, size: tuple[int, int]) -> npt.NDArray[np.int32]:
    """Whole-pixel polyline for OpenCV: floored like mediapipe's conversion, and kept within a
    few image sizes of the canvas so that wild landmarks cannot overflow OpenCV's integers
    (a line that far out is off the image either way)."""
    bound = 8 * max(size)
    return np.clip(np.floor(curve), -bound, bound).astype(np.int32).reshape(-1, 1, 2)


def draw_pose(
    points: npt.ArrayLike, size: tuple[int, int], thickness: int = THICKNESS
) -> np.ndarray:
    """One pose image: ``points`` ``[68, 2]`` (pixels of the image) drawn on a black
    ``size`` = ``(width, height)`` canvas, uint8 ``[H, W, 3]`` RGB.

    Landmarks may lie outside the image: lines are clipped at its border (mediapipe instead
    drops every line with an end outside).  Upstream always draws on a 512x512 canvas and
    resizes that bilinearly to the requested size; drawing at the size itself gives the same
    picture at 512x512 - the size AniPortrait runs at - and crisp 2-pixel lines at any other.
    """
    p = _checked(points)
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive (width, height), got {size}")
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for name, curve, closed in pose_curves(p):
        cv2.polylines(image, [_pixels(curve, size)], closed, PALETTE[name], thickness,
                      lineType=cv2.LINE_8)  # fmt: skip
    return image


def pose_images(
    sequence: npt.ArrayLike, size: tuple[int, int], thickness: int = THICKNESS
) -> np.ndarray:
    """Pose images of a landmark sequence ``[T, 68, 2]``: uint8 ``[T, H, W, 3]`` RGB."""
    seq = np.asarray(sequence, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [T, 68, 2], got {seq.shape}")
    out = np.zeros((len(seq), size[1], size[0], 3), dtype=np.uint8)
    for k, points in enumerate(seq):
        out[k] = draw_pose(points, size, thickness)
    return out


def to_network(images: npt.ArrayLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pose images (uint8 ``[T, H, W, 3]``, or one ``[H, W, 3]``) as the PoseGuider's input:
    ``[T, 3, H, W]`` in ``[-1, 1]`` (black is -1).

    This is what the PoseGuider was trained on: AniPortrait's training loader divides the
    drawings by 255 and normalises with mean 0.5 and std 0.5, and the diffusers-format release
    feeds PIL images, which diffusers' image processor scales the same way.  The official
    inference scripts instead hand uint8 arrays to that processor, which only scales PIL images,
    so their pose images reach the network in ``[-1, 509]``; that is a bug, not reproduced.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"pose images must be uint8, got {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected pose images [T, H, W, 3], got {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).to(torch.float32)
    return ((x / 255.0 - 0.5) / 0.5).to(dtype).contiguous()
