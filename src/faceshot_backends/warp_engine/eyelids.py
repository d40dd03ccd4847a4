"""A light shadow along the lid line of a closing eye.

Closing an eye is the warp squashing the eye triangles under the stretched lid; where the lid
meets the lower lid that leaves skin on skin with no crease, so the lid line is darkened a
little as the eye closes beyond half its reference opening.
"""

from __future__ import annotations

import numpy as np

from faceshot_backends.warp_engine.contours import CONTOURS
from faceshot_backends.warp_engine.geometry import smoothstep
from faceshot_backends.warp_engine.raster import patch_box, poly_mask

_LID_SHADOW = 0.3  # darkening along a fully closed lid line


class EyelidShadow:
    """Darkens the lid line of an eye that closes, where the warp alone leaves skin on skin."""

    _EYES = (("right_eye", 36), ("left_eye", 42))

    def __init__(self, vertices: np.ndarray) -> None:
        self._ref = [self._openness(vertices, a) for _, a in self._EYES]

    @staticmethod
    def _openness(points: np.ndarray, a: int) -> float:
        """Eye aspect ratio: mean lid distance over the corner distance."""
        p = points[a : a + 6]
        width = float(np.hypot(*(p[3] - p[0])))
        lids = np.hypot(*(p[1] - p[5])) + np.hypot(*(p[2] - p[4]))
        return float(lids / (2 * width)) if width > 1e-6 else 0.0

    def apply(self, out: np.ndarray, vertices: np.ndarray) -> None:
        """Darken along the upper lid of each eye closed beyond half its reference opening."""
        size = (out.shape[1], out.shape[0])
        for ref, (name, a) in zip(self._ref, self._EYES, strict=True):
            if ref < 0.05:  # the reference eye is already closed: nothing to add
                continue
            strength = _LID_SHADOW * smoothstep(1.0 - self._openness(vertices, a) / ref, 0.5, 1.0)
            if strength <= 0:
                continue
            lid = vertices[list(CONTOURS[name][:7])]  # corner, upper lid, corner
            sigma = max(0.7, 0.05 * float(np.hypot(*(lid[-1] - lid[0]))))
            box = patch_box(lid, 3 * sigma + 2, size)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            alpha = poly_mask(lid, box, sigma, closed=False) * strength
            patch = out[y0:y1, x0:x1].astype(np.float32) * (1.0 - alpha)[..., None]
            out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
