"""A procedural, frontal 68-point mean face and expression edits of it, for tests and benchmarks.

Faces with an exactly known shape and expression (eyes closed, mouth open by a chosen amount,
a rigid turn), so that the retargeting and warp tests can state what the output must be, and
the benchmarks run on the same faces.  In faceshot itself only the web app's landmark editor
uses it: :func:`mean_face` is the template it places on three clicked anchors.

The layout follows the iBUG 300-W order (see :mod:`faceshot_core.schema`): jaw 0-16 from the
subject's right ear (image left) round the chin, brows 17-21 / 22-26 (image left / right), nose
bridge 27-30 downward, nostrils 31-35 left to right, eyes 36-41 (36 outer, 39 inner corner,
37-38 upper lid, 40-41 lower lid) and 42-47 (42 inner, 45 outer), outer lips 48-59 from the left
corner over the upper lip to 54 and back along the lower lip, inner lips 60-67 (60 and 64 corners,
61-63 upper, 65-67 lower).  Proportions are those of an average adult face; the mouth is
*closed* (the inner lips touch), which is the neutral pose of most driving videos and exactly the
case where the paper's Eq. 6 divides by zero.

Coordinates are pixels of a ``size`` x ``size`` image, float64.
"""

from __future__ import annotations

import numpy as np

INNER_UPPER_LIP = (61, 62, 63)
INNER_LOWER_LIP = (67, 66, 65)  # below 61, 62, 63 respectively


def _eye(cx: float, cy: float, half_w: float, half_h: float) -> np.ndarray:
    """Six eye points on an ellipse, iBUG order for either eye (both are listed left to right).

    Image-left corner, two upper-lid points, image-right corner, then the lower lid back from
    right to left; the lid points sit at 1/3 and 2/3 of the width, as in 300-W annotations.
    """
    xs = np.array([-1.0, -1 / 3, 1 / 3, 1.0, 1 / 3, -1 / 3])
    lid = np.sqrt(1.0 - xs**2) * half_h
    ys = np.array([0.0, -1.0, -1.0, 0.0, 1.0, 1.0]) * lid
    return np.stack([cx + half_w * xs, cy + ys], axis=1)


def mean_face(size: int = 512) -> np.ndarray:
    """A plausible frontal 68-point face centred in a ``size`` x ``size`` image, float64."""
    u = np.empty((68, 2), dtype=np.float64)  # unit-square coordinates, scaled at the end
    # Jaw: lower half of an ellipse from ear level (y = 0.42) round the chin (y = 0.86).
    t = np.pi - np.arange(17) * np.pi / 16
    u[0:17, 0] = 0.5 + 0.31 * np.cos(t)
    u[0:17, 1] = 0.42 + 0.44 * np.sin(t)
    # Brows: arches from outer to inner (image-left) and inner to outer (image-right).
    bx = np.linspace(0.25, 0.45, 5)
    arch = 0.345 - 0.03 * np.sin(np.pi * np.linspace(0.15, 0.85, 5))
    u[17:22] = np.stack([bx, arch], axis=1)
    u[22:27] = np.stack([1.0 - bx[::-1], arch[::-1]], axis=1)
    # Nose bridge straight down, nostrils in a shallow arc with 33 lowest.
    u[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.40, 0.56, 4)], axis=1)
    nx = np.linspace(0.445, 0.555, 5)
    u[31:36] = np.stack([nx, 0.60 + 0.012 * (1.0 - ((nx - 0.5) / 0.055) ** 2)], axis=1)
    # Eyes: 36 outer ... 39 inner (image left); 42 inner ... 45 outer (image right).
    u[36:42] = _eye(0.36, 0.42, 0.055, 0.016)
    u[42:48] = _eye(0.64, 0.42, 0.055, 0.016)
    # Outer lips: 48 left corner, 49-53 upper lip (cupid's bow), 54 right corner, 55-59 lower.
    ox = np.array([0.40, 0.43, 0.47, 0.50, 0.53, 0.57, 0.60])
    upper = np.array([0.71, 0.688, 0.676, 0.682, 0.676, 0.688, 0.71])
    u[48:55] = np.stack([ox, upper], axis=1)
    lx = ox[::-1][1:-1]  # 55..59 go right to left
    lower = 0.71 + 0.045 * np.sqrt(1.0 - ((lx - 0.5) / 0.1) ** 2)
    u[55:60] = np.stack([lx, lower], axis=1)
    # Inner lips: corners 60, 64; upper 61-63 and lower 67-65 coincide (closed mouth).
    ix = np.array([0.42, 0.46, 0.50, 0.54, 0.58])
    u[60:65] = np.stack([ix, np.full(5, 0.71)], axis=1)
    u[65:68] = u[[63, 62, 61]]
    return u * float(size)


def face_down(face: np.ndarray) -> np.ndarray:
    """Unit vector pointing from the forehead to the chin, perpendicular to the 0-16 line."""
    v = face[16] - face[0]
    v = v / np.linalg.norm(v)
    return np.array([-v[1], v[0]])


def eye_aspect_ratio(face: np.ndarray) -> float:
    """Mean of the two eyes' ``(|37-41| + |38-40|) / (2 |36-39|)`` (Soukupova & Cech)."""

    def ear(a: int) -> float:
        p = face[a : a + 6]
        vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        return float(vertical / (2.0 * np.linalg.norm(p[0] - p[3])))

    return 0.5 * (ear(36) + ear(42))


def inner_lip_gap(face: np.ndarray) -> float:
    """Mean distance between the inner upper lip (61-63) and inner lower lip (67-65)."""
    return float(
        np.mean(np.linalg.norm(face[list(INNER_UPPER_LIP)] - face[list(INNER_LOWER_LIP)], axis=1))
    )


def with_eyes_closed(face: np.ndarray) -> np.ndarray:
    """Both upper lids moved onto the lower lids (37->41, 38->40, 43->47, 44->46)."""
    out = np.array(face, dtype=np.float64, copy=True)
    out[[37, 38, 43, 44]] = out[[41, 40, 47, 46]]
    return out


def with_mouth_open(face: np.ndarray, amount: float) -> np.ndarray:
    """Open the mouth: the inner lips part by ``amount`` times the inner mouth width.

    The lower lip (inner 65-67 and outer 55-59) drops by that gap along the face's down
    direction and the jaw follows, fully at the chin and fading towards the ears.
    """
    out = np.array(face, dtype=np.float64, copy=True)
    gap = amount * float(np.linalg.norm(face[64] - face[60]))
    down = face_down(face) * gap
    out[[55, 56, 57, 58, 59, 65, 66, 67]] += down
    weights = np.clip(1.0 - np.abs(np.arange(17) - 8) / 6.0, 0.0, 1.0)  # 0 at 2 and 14
    out[0:17] += weights[:, None] * (0.6 * down)
    return out


def rigid(
    face: np.ndarray,
    angle: float,
    translation: tuple[float, float] | np.ndarray = (0.0, 0.0),
    centre: tuple[float, float] | np.ndarray | None = None,
) -> np.ndarray:
    """Rotate ``face`` (or ``[M, 68, 2]`` faces) by ``angle`` radians about ``centre``, then shift.

    ``centre`` defaults to the point centroid.  Positive angles turn +x towards +y (clockwise on
    screen, image y pointing down).
    """
    pts = np.asarray(face, dtype=np.float64)
    c = pts.reshape(-1, 2).mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float64)
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    return (pts - c) @ rot.T + c + np.asarray(translation, dtype=np.float64)


def scale_points(
    face: np.ndarray, indices: tuple[int, ...] | range, sx: float, sy: float | None = None
) -> np.ndarray:
    """Scale the given points about their centroid (a character with bigger eyes, mouth...)."""
    out = np.array(face, dtype=np.float64, copy=True)
    idx = list(indices)
    c = out[idx].mean(axis=0)
    out[idx] = (out[idx] - c) * np.array([sx, sx if sy is None else sy]) + c
    return out
