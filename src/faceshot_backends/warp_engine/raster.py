"""Pixel boxes and feathered masks: what the warp and the mouth and lid painters draw with.

Everything is rasterised with OpenCV at :data:`SHIFT` sub-pixel bits, and only inside the
integer box that the drawn shape can touch, so a frame's cost follows what moved rather than
the image size.
"""

from __future__ import annotations

import cv2
import numpy as np

#: ``(x0, y0, x1, y1)`` in pixels, end-exclusive.
Box = tuple[int, int, int, int]

#: Sub-pixel bits of every cv2 rasterisation (coordinates are fixed-point with this shift).
SHIFT = 4


def patch_box(points: np.ndarray, pad: float, size: tuple[int, int]) -> Box | None:
    """Integer box ``(x0, y0, x1, y1)`` round ``points`` padded and clipped, or None if empty."""
    lo = np.floor(points.min(axis=0) - pad)
    hi = np.ceil(points.max(axis=0) + pad) + 1
    x0, y0 = int(max(lo[0], 0)), int(max(lo[1], 0))
    x1, y1 = int(min(hi[0], size[0])), int(min(hi[1], size[1]))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def within(inner: Box, outer: Box) -> tuple[slice, slice]:
    """Index of box ``inner`` in an array covering box ``outer`` (which holds it)."""
    return slice(inner[1] - outer[1], inner[3] - outer[1]), slice(
        inner[0] - outer[0], inner[2] - outer[0]
    )


def intersection(a: Box, b: Box) -> Box | None:
    """The overlap of two boxes, or None."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def union(a: Box | None, b: Box | None) -> Box | None:
    """The smallest box holding both (either may be None)."""
    if a is None or b is None:
        return a or b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def poly_mask(polygon: np.ndarray, box: Box, sigma: float, *, closed: bool = True) -> np.ndarray:
    """Feathered float32 mask (0..1) of a polygon (or a polyline when not ``closed``) in ``box``."""
    x0, y0, x1, y1 = box
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    fixed = np.rint((polygon - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
    if closed:
        cv2.fillPoly(canvas, [fixed], 255, cv2.LINE_AA, SHIFT)
    else:
        cv2.polylines(canvas, [fixed], False, 255, max(1, round(sigma)), cv2.LINE_AA, SHIFT)
    mask = canvas.astype(np.float32) * (1.0 / 255.0)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


class Planes:
    """Reusable float32 scratch planes, handed out as contiguous arrays of any shape that fits.

    A frame's maps are a few arrays of a megabyte each.  Allocated afresh every frame, each
    comes from the operating system as new pages (the allocator hands large blocks back on
    free), and the page faults of touching them cost more than the arithmetic: several ms a
    frame.  Reused planes cost nothing; one owner (one warper) per thread.
    """

    def __init__(self, count: int, size: int) -> None:
        self._flat = np.empty((count, size), dtype=np.float32)

    def get(self, k: int, shape: tuple[int, int]) -> np.ndarray:
        """Plane ``k`` as a contiguous ``shape`` array (its contents are left over: overwrite)."""
        return self._flat[k, : shape[0] * shape[1]].reshape(shape)
