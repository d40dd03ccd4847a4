"""The apron: a ring of mesh vertices just outside the face that move with the smooth field.

The face is warped piecewise-affinely and everything outside it by a smooth field
(:mod:`.exterior`); the two must meet without a seam.  Cross-fading them *inside* the face would
hand the jaw line, which is the face's edge, to the coarse smooth field, and the chin would lag
its landmarks by a few pixels.  So the hand-over happens *outside* the face instead, on an
apron: vertices placed ``width`` pixels beyond the face (offset from the convex hull of the
moving vertices), each moved per frame by the smooth field at its reference position.  The
apron's triangles carry the exact piecewise-affine warp from the jaw line to the apron's outer
edge, where it agrees with the smooth field at every apron vertex, and the warp cross-fades to
the smooth field across them.
"""

from __future__ import annotations

import cv2
import numpy as np


def apron_points(moving: np.ndarray, size: tuple[int, int], width: float) -> np.ndarray:
    """Points ``[A, 2]`` about ``width`` px outside the convex hull of ``moving``, in the image.

    The hull, dilated by ``width`` (a distance transform of its mask), gives the outline; points
    are taken along it about ``width`` apart.  Parts of the outline outside the image, or
    within 2 px of its border (where the border's own vertices are), are left out.
    """
    w, h = size
    hull = cv2.convexHull(np.rint(moving).astype(np.int32))
    mask = np.full((h, w), 255, dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 0)
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    grown = (dist <= width).astype(np.uint8)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2))
    outline = max(contours, key=len).reshape(-1, 2).astype(np.float64)
    steps = np.hypot(*np.diff(outline, axis=0, append=outline[:1]).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    count = max(int(arc[-1] + steps[-1]) // max(int(width), 1), 3)
    at = np.linspace(0.0, arc[-1] + steps[-1], count, endpoint=False)
    picks = outline[np.searchsorted(arc, at, side="right") - 1]
    inside = (picks[:, 0] > 2) & (picks[:, 0] < w - 3) & (picks[:, 1] > 2) & (picks[:, 1] < h - 3)
    return picks[inside]
