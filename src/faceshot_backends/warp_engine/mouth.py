"""The mouth interior: what shows between the inner lips of the reposed mouth.

Everything is painted strictly inside the destination inner-lip contour (points 60-67 and the
contour midpoints), whose edge is anti-aliased and softened inwards only, so nothing spreads
onto the lips.  Inside it, back to front:

* **Cavity.**  The back of the mouth, shaded by the distance from the lips: a darkened version
  of the character's own lip colour at the lips, near black at the back (the middle of the
  opening) - a mouth, not a flat polygon.
* **Teeth band.**  A reference with closed lips has no teeth to show; opening wide, a soft band
  of teeth appears under the upper lip.
* **The reference's own interior**, carried by the lips (:mod:`.lip_layers`): its upper teeth
  with the upper lip, its lower teeth with the lower lip, the upper in front.

At the reference's own mouth the layers reproduce the reference exactly; the painter does not
run at all while the inner lips stay where they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceshot_backends.warp_engine.contours import CONTOURS, LIP_PAIRS
from faceshot_backends.warp_engine.geometry import smoothstep
from faceshot_backends.warp_engine.lip_layers import LOWER, UPPER, Layer, LipLayers
from faceshot_backends.warp_engine.raster import SHIFT, Box, patch_box
from faceshot_core.schema import INNER_LIPS, OUTER_LIPS

_CAVITY_RED = np.array([104.0, 38.0, 36.0], dtype=np.float32)  # a mouth's red, near the lips
_CAVITY_DEEP = np.array([20.0, 7.0, 8.0], dtype=np.float32)  # the back of the mouth
_TEETH = np.array([232.0, 226.0, 212.0], dtype=np.float32)
_INNER_LOOP = list(CONTOURS["inner_lips"])
_STILL = 1e-3  # px: inner lips that moved less than this leave the mouth as the warp drew it


@dataclass(frozen=True)
class _Mouth:
    """Inner-mouth axes: ``right`` along the corners 60 -> 64, ``down`` towards the lower lip."""

    centre: np.ndarray
    right: np.ndarray
    down: np.ndarray
    width: float
    gap: float

    @classmethod
    def of(cls, points: np.ndarray) -> _Mouth:
        v = points[64] - points[60]
        width = float(np.hypot(*v))
        right = v / width if width > 1e-6 else np.array([1.0, 0.0])
        down = np.array([-right[1], right[0]])
        upper = points[[u for u, _ in LIP_PAIRS]]
        lower = points[[lo for _, lo in LIP_PAIRS]]
        gap = max(float(np.mean((lower - upper) @ down)), 0.0)
        return cls(points[list(INNER_LIPS)].mean(axis=0), right, down, max(width, 1e-6), gap)

    @property
    def opening(self) -> float:
        """Gap between the inner lips relative to the mouth width (scale free)."""
        return self.gap / self.width


class MouthInterior:
    """Paints the mouth interior inside the destination inner lips (see the module docstring).

    ``image`` is the reference (RGB uint8), ``vertices`` its mesh vertices; ``teeth`` allows
    the teeth band for a reference whose lips touch.
    """

    def __init__(self, image: np.ndarray, vertices: np.ndarray, *, teeth: bool) -> None:
        self._size = (image.shape[1], image.shape[0])
        self._ref_inner = vertices[_INNER_LOOP].copy()
        self._ref = _Mouth.of(vertices)
        self._layers = LipLayers(image, vertices)
        self._teeth = teeth and self._layers.empty
        lip = _lip_colour(image, vertices)
        self._edge_colour = 0.5 * _CAVITY_RED + 0.25 * lip
        self._deep_colour = _CAVITY_DEEP + 0.04 * lip

    def apply(self, out: np.ndarray, vertices: np.ndarray) -> None:
        """Paint the interior for destination ``vertices`` into ``out`` (uint8 RGB, in place)."""
        poly = vertices[_INNER_LOOP]
        if np.abs(poly - self._ref_inner).max() < _STILL:
            return
        dst = _Mouth.of(vertices)
        self._closure_line(out, vertices, dst)
        soft = max(0.7, 0.012 * dst.width)
        box = patch_box(poly, 2, self._size)
        if box is None:
            return
        mask, inside = _inner_mask(poly, box, soft)
        if mask.max() <= 0.0:
            return
        interior = self._cavity(inside, dst)
        teeth = smoothstep(dst.opening, 0.12, 0.3) if self._teeth else 0.0
        if teeth > 0:
            _paint_teeth(interior, vertices[UPPER], dst, box, teeth)
        layer = self._layers.layer(vertices, box)
        if layer is not None:
            _over(interior, layer)
        x0, y0, x1, y1 = box
        patch = out[y0:y1, x0:x1].astype(np.float32)
        patch += (interior - patch) * mask[..., None]
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

    def _closure_line(self, out: np.ndarray, vertices: np.ndarray, mouth: _Mouth) -> None:
        """Darken the line where the lips meet, when the mouth has closed beyond the reference's.

        Closed lips meet in a dark line; the warp alone leaves lip on lip there, often with a
        sliver of the teeth that the reference's lip triangles held at their inner edge.
        """
        closing = smoothstep(self._ref.opening - mouth.opening, 0.0, 0.05)
        strength = 0.6 * closing * (1.0 - smoothstep(mouth.opening, 0.02, 0.1))
        if strength < 1.0 / 255.0:
            return
        line = (vertices[UPPER] + vertices[LOWER]) / 2
        width = max(1.0, 0.02 * mouth.width)
        box = patch_box(line, 3 * width + 2, self._size)
        if box is None:
            return
        x0, y0, x1, y1 = box
        canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        fixed = np.rint((line - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
        cv2.polylines(canvas, [fixed], False, 255, max(1, round(width)), cv2.LINE_AA, SHIFT)
        alpha = cv2.GaussianBlur(canvas.astype(np.float32), (0, 0), 0.5 * width) * (strength / 255)
        taper = _taper_mask(line, box, mouth)
        alpha *= taper
        patch = out[y0:y1, x0:x1].astype(np.float32)
        patch += (self._deep_colour - patch) * alpha[..., None]
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

    def _cavity(self, inside: np.ndarray, mouth: _Mouth) -> np.ndarray:
        """The back of the mouth: lip-dark at the lips, darkest along the middle of the gap.

        Shaded by the distance from the lips over half the opening, so a slit is a dark line,
        a wide opening a deep cavity with a lighter rim.
        """
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
        depth = np.clip(dist / max(0.45 * mouth.gap, 1.5), 0.0, 1.0)
        depth = (depth * depth * (3.0 - 2.0 * depth))[..., None]
        return self._edge_colour + (self._deep_colour - self._edge_colour) * depth


def _inner_mask(poly: np.ndarray, box: Box, soft: float) -> tuple[np.ndarray, np.ndarray]:
    """The interior's weight over ``box``, and the plain inside mask (uint8 0/1).

    Anti-aliased coverage of the polygon, softened inwards over about ``soft`` px (the blur of the
    coverage, ramped from its value on the edge): zero outside the contour but for the
    anti-aliasing, never a halo on the lips.
    """
    x0, y0, x1, y1 = box
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    fixed = np.rint((poly - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 255, cv2.LINE_AA, SHIFT)
    coverage = canvas.astype(np.float32) * (1.0 / 255.0)
    blurred = cv2.GaussianBlur(coverage, (0, 0), soft)
    ramp = np.clip((blurred - 0.3) / 0.5, 0.0, 1.0)
    inside = np.zeros_like(canvas)
    cv2.fillPoly(inside, [fixed], 1, cv2.LINE_8, SHIFT)
    return coverage * ramp, inside


def _taper_mask(line: np.ndarray, box: Box, mouth: _Mouth) -> np.ndarray:
    """1 along the middle of the mouth, fading to 0.3 at the corners (a lip line thins out)."""
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(mouth.centre[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(mouth.centre[1])
    across = (xs * mouth.right[0] + ys * mouth.right[1]) / (mouth.width / 2)
    return np.clip(1.0 - 0.7 * across * across, 0.3, 1.0).astype(np.float32)


def _over(interior: np.ndarray, layer: Layer) -> None:
    """Composite ``layer`` over ``interior`` in place."""
    interior += (layer.colour - interior) * layer.alpha[..., None]


def _lip_colour(image: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """The median colour of the reference's lips (between the outer and inner contours)."""
    h, w = image.shape[:2]
    ring = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(ring, [np.rint(vertices[list(OUTER_LIPS)]).astype(np.int32)], 1)
    cv2.fillPoly(ring, [np.rint(vertices[list(INNER_LIPS)]).astype(np.int32)], 0)
    pixels = image[ring.astype(bool)]
    if len(pixels) < 4:
        return _CAVITY_RED * 1.6
    return np.median(pixels, axis=0).astype(np.float32)


def _paint_teeth(
    interior: np.ndarray, upper: np.ndarray, mouth: _Mouth, box: Box, strength: float
) -> None:
    """A soft band of teeth under the upper inner lip: even in the middle, tapering to the corners.

    Shaded darker towards the corners and the lower edge, as teeth in the mouth's shadow.
    """
    x0, y0, x1, y1 = box
    depth = min(0.4 * mouth.gap, 0.16 * mouth.width)
    taper = np.clip(1.8 * np.sin(np.linspace(0.0, np.pi, len(upper))), 0.1, 1.0)[:, None]
    band = np.vstack([upper - mouth.down, (upper + mouth.down * depth * taper)[::-1]])
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.rint((band - (x0, y0)) * (1 << SHIFT)).astype(np.int32)], 255,
                 cv2.LINE_AA, SHIFT)  # fmt: skip
    alpha = cv2.GaussianBlur(canvas.astype(np.float32) * (strength * 0.9 / 255.0), (0, 0),
                             max(0.6, 0.015 * mouth.width))  # fmt: skip
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs - mouth.centre[0], ys - mouth.centre[1]
    across = (dx * mouth.right[0] + dy * mouth.right[1]) / (mouth.width / 2)
    lip_line = float(((upper - mouth.centre) @ mouth.down).mean())
    below = dx * mouth.down[0] + dy * mouth.down[1] - lip_line
    below_lip = np.clip(below / max(depth, 1.0), 0.0, 1.0)
    shade = np.clip(1.0 - 0.5 * across * across - 0.25 * below_lip, 0.35, 1.0)[..., None]
    interior += (_TEETH * shade - interior) * alpha[..., None]
