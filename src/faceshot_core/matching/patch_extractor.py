"""A feature extractor whose matching answer is known, for tests of the matcher and the gallery.

Diffusion features need weights that cannot be downloaded in tests, and random weights give
features whose correct match nobody knows.  :class:`PatchExtractor` is a real dense descriptor
instead: at every cell of the map, the 7x7 grid of colour values around it in a blurred copy of
the image, minus their mean (so cosine similarity is normalised cross-correlation).  Matching a
landmark of an image on a :func:`shifted` copy of the same image must then land on the landmark
plus the shift, which is what the tests of Eq. 3-4 and of two-pass gallery matching check.

It satisfies :class:`~faceshot_core.matching.base.FeatureExtractor` with numpy and OpenCV only
(no torch).  faceshot itself does not use this module; tests import it from the package so that
no test module imports another.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from faceshot_core.matching.base import FeatureSpec

__all__ = ["FULL_RES", "LOW_RES", "PatchExtractor", "shifted"]

#: Full-resolution map: 7x7 samples 5 pixels apart (a 31x31 window), blurred with sigma 3.
FULL_RES = {"downscale": 1, "sigma": 3.0, "step": 5}
#: Quarter-resolution map: 7x7 cells of 4x4 pixels, like a diffusion block's coarse map.
LOW_RES = {"downscale": 4, "sigma": 1.0, "step": 1}


class PatchExtractor:
    """Zero-mean 7x7 colour patches of a blurred image, at 1/``downscale`` of its size.

    ``step`` spaces the 7x7 samples (a 7x7 grid ``step`` pixels apart), so a full-resolution
    map can see a window large enough to tell skin from skin.  ``calls`` records, per call, the
    images and prompts received (to check Eq. 3's prompt routing).
    """

    def __init__(
        self, downscale: int = 1, *, sigma: float = 1.0, step: int = 1, radius: int = 3
    ) -> None:
        self.downscale, self.sigma, self.step, self.radius = downscale, sigma, step, radius
        size = 2 * radius + 1
        self.spec = FeatureSpec(
            model=f"test-patch-{size}x{size}-step{step}-sigma{sigma}",
            timestep=0,
            block=f"1/{downscale}",
            channels=size * size * 3,
        )
        self.calls: list[tuple[list[np.ndarray], list[np.ndarray | None]]] = []

    def feature_maps(
        self, images: Sequence[np.ndarray], prompts: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        prompt_list: list[np.ndarray | None] = (
            [None] * len(images) if prompts is None else list(prompts)
        )
        self.calls.append((list(images), prompt_list))
        return [self._one(image) for image in images]

    def _one(self, image: np.ndarray) -> np.ndarray:
        img: np.ndarray = image.astype(np.float32) / 255.0
        if self.downscale > 1:
            h, w = image.shape[:2]
            size = (round(w / self.downscale), round(h / self.downscale))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        img = cv2.GaussianBlur(img, (0, 0), self.sigma)
        r = self.radius * self.step
        pad = cv2.copyMakeBorder(img, r, r, r, r, cv2.BORDER_REFLECT_101)
        h, w = img.shape[:2]
        offsets = range(0, 2 * r + 1, self.step)
        patches = np.stack([pad[dy : dy + h, dx : dx + w] for dy in offsets for dx in offsets])
        patches -= patches.mean(axis=0, keepdims=True)  # [49, h, w, 3]
        return np.ascontiguousarray(patches.transpose(0, 3, 1, 2).reshape(-1, h, w))


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` translated by ``(dx, dy)`` pixels (bicubic, reflected borders)."""
    m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    h, w = image.shape[:2]
    return cv2.warpAffine(
        image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )
