"""The mouth interior: what a mouth shows when it opens wider than in the reference.

A mouth opened wider than in the reference needs pixels the reference does not have: a dark
cavity (dark red, darker at the back) is painted into the destination inner-lip polygon with
feathered edges, a soft teeth band under the upper lip when a closed reference opens wide, and
a reference that already shows its mouth interior keeps it, moving with the upper lip, so the
newly opened gap appears below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceshot_backends.warp_engine.contours import CONTOURS, LIP_PAIRS
from faceshot_backends.warp_engine.geometry import similarity_transform, smoothstep
from faceshot_backends.warp_engine.raster import Box, patch_box, poly_mask
from faceshot_core.schema import INNER_LIPS

_CAVITY_EDGE = np.array([112.0, 44.0, 40.0], dtype=np.float32)  # RGB near the lips
_CAVITY_DEEP = np.array([26.0, 8.0, 10.0], dtype=np.float32)  # RGB at the back of the mouth
_TEETH = np.array([232.0, 226.0, 212.0], dtype=np.float32)
_INNER_LOOP = list(CONTOURS["inner_lips"])
_UPPER_INNER = _INNER_LOOP[:9]  # 60 ... 64 with the midpoints between


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
    """Paints what a mouth shows when it opens wider than in the reference.

    The cavity appears gradually as the opening exceeds the reference's (``opening`` is the gap
    over the mouth width, so a 10 % wider opening always looks the same).  A reference whose
    inner lips are apart shows its own interior (teeth, tongue): that layer is kept, attached
    to the upper lip like upper teeth are to the skull, and the cavity fills the gap below it.
    A reference with a closed mouth has no interior to show, so a synthetic, soft teeth band
    under the upper lip appears when the mouth opens wide.
    """

    def __init__(self, image: np.ndarray, vertices: np.ndarray, *, teeth: bool) -> None:
        self._size = (image.shape[1], image.shape[0])
        self._ref = _Mouth.of(vertices)
        self._own = smoothstep(self._ref.opening, 0.04, 0.1)  # how much interior it shows
        self._teeth = teeth
        self._upper_ref = vertices[_UPPER_INNER]
        poly = vertices[_INNER_LOOP]
        sigma = max(0.6, 0.02 * self._ref.width)
        box = patch_box(poly, 3 * sigma + 2, self._size)
        self._layer: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self._own > 0 and box is not None:
            x0, y0, x1, y1 = box
            patch = image[y0:y1, x0:x1].astype(np.float32)
            self._layer = (patch, poly_mask(poly, box, sigma), np.array([x0, y0], np.float64))

    def apply(self, out: np.ndarray, vertices: np.ndarray) -> None:
        """Paint the interior for destination ``vertices`` into ``out`` (uint8 RGB, in place)."""
        dst = _Mouth.of(vertices)
        cavity = smoothstep(dst.opening - self._ref.opening, 0.0, 0.08)
        if cavity < 1.0 / 255.0:
            return
        poly = vertices[_INNER_LOOP]
        sigma = max(0.6, 0.03 * dst.width)
        box = patch_box(poly, 3 * sigma + 2, self._size)
        if box is None:
            return
        x0, y0, x1, y1 = box
        mask = poly_mask(poly, box, sigma)
        patch = out[y0:y1, x0:x1].astype(np.float32)
        patch += (self._cavity_colour(dst, box) - patch) * (cavity * mask)[..., None]
        teeth = (1.0 - self._own) * smoothstep(dst.opening, 0.15, 0.35)
        if self._teeth and teeth > 0:
            self._paint_teeth(patch, vertices[_UPPER_INNER], dst, box, mask * teeth)
        if self._layer is not None:
            self._paint_own(patch, vertices[_UPPER_INNER], box, mask * (cavity * self._own))
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _grid(mouth: _Mouth, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """Pixel offsets from the mouth centre along (``right``, ``down``), normalised."""
        x0, y0, x1, y1 = box
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xs - mouth.centre[0], ys - mouth.centre[1]
        du = (dx * mouth.right[0] + dy * mouth.right[1]) / (mouth.width / 2)
        dv = (dx * mouth.down[0] + dy * mouth.down[1]) / max(mouth.gap / 2, 1.0)
        return du, dv

    def _cavity_colour(self, mouth: _Mouth, box: Box) -> np.ndarray:
        """Dark red near the lips to near black at the back (the centre of the opening)."""
        du, dv = self._grid(mouth, box)
        depth = np.clip(1.0 - np.sqrt(du * du + dv * dv), 0.0, 1.0) ** 0.6
        return _CAVITY_EDGE + (_CAVITY_DEEP - _CAVITY_EDGE) * depth[..., None]

    def _paint_teeth(
        self, patch: np.ndarray, upper: np.ndarray, mouth: _Mouth, box: Box, alpha: np.ndarray
    ) -> None:
        """A soft band under the upper inner lip: even in the middle, tapering to the corners.

        Shaded darker towards the corners and the lower edge, as teeth in the mouth's shadow.
        """
        depth = min(0.4 * mouth.gap, 0.16 * mouth.width)
        taper = np.clip(1.8 * np.sin(np.linspace(0.0, np.pi, len(upper))), 0.1, 1.0)[:, None]
        band = np.vstack([upper - mouth.down, (upper + mouth.down * depth * taper)[::-1]])
        alpha = alpha * poly_mask(band, box, max(0.6, 0.015 * mouth.width)) * 0.9
        du, dv = self._grid(mouth, box)
        below_lip = np.clip((dv + 1.0) * max(mouth.gap / 2, 1.0) / max(depth, 1.0), 0.0, 1.0)
        shade = np.clip(1.0 - 0.5 * du * du - 0.25 * below_lip, 0.35, 1.0)[..., None]
        patch += (_TEETH * shade - patch) * alpha[..., None]

    def _paint_own(self, patch: np.ndarray, upper: np.ndarray, box: Box, alpha: np.ndarray) -> None:
        """The reference's interior, moved with the upper lip, inside the destination opening."""
        assert self._layer is not None
        layer, layer_mask, origin = self._layer
        m = similarity_transform(self._upper_ref, upper)  # reference -> destination pixels
        m[:, 2] += m[:, :2] @ origin - np.array(box[:2], dtype=np.float64)  # patch to patch
        size = (box[2] - box[0], box[3] - box[1])
        flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
        moved = cv2.warpAffine(layer, m, size, flags=flags, borderMode=border)
        alpha = alpha * cv2.warpAffine(layer_mask, m, size, flags=flags)
        patch += (moved - patch) * alpha[..., None]
