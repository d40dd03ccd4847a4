"""Feature maps read at landmarks: the pixel convention, point features and target vectors.

Pixel convention
----------------
A landmark ``(x, y)`` is in image pixels with pixel *centres* at integers: pixel ``(i, j)``
covers ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]`` (dlib's, FAN's and 300-W's convention, 0-based).
A feature map ``[C, h, w]`` covers the whole ``W x H`` image (the extractor may resize the
image, even anisotropically, but must not crop or pad it), so map cell ``(u, v)`` has its
centre at image position ``((u + 0.5) * W / w - 0.5, (v + 0.5) * H / h - 0.5)``.  Upsampling is
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``: the value at image
position ``x`` is the linear interpolation of the map at ``u = (x + 0.5) * w / W - 0.5``, with
``u`` clamped to ``[0, w - 1]`` (so the border cells extend to the image edge), and likewise in
``y``.  We use that formula for *any* real ``(x, y)``: at integer pixels it is exactly the
upsampled map, between pixels it is the same piecewise-bilinear surface (so sub-pixel landmarks
need no rounding).  The vector is L2-normalised *after* interpolation, as
``torch.nn.functional.normalize`` (``v / max(|v|, 1e-12)``) would on the upsampled map.

Target vectors
--------------
The per-landmark target vector is the mean of the ``k`` normalised point features, then
**re-normalised** (:func:`average_vectors`).  Cosine similarity does not care about the length
of the average, so the argmax of Eq. 4 is unchanged; re-normalising makes the returned scores
true cosine similarities in ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ImageSize = tuple[int, int]
"""``(width, height)`` in pixels."""

#: Lower bound of a norm before dividing, as in ``torch.nn.functional.normalize``.
NORM_EPS = 1e-12


@dataclass(frozen=True)
class Axis:
    """Bilinear weights along one axis: value = (1 - frac) * map[i0] + frac * map[i1]."""

    i0: np.ndarray
    i1: np.ndarray
    frac: np.ndarray


def map_coordinates(coords: np.ndarray, image_len: int, map_len: int) -> np.ndarray:
    """Image pixel coordinates -> map cell coordinates (align_corners=False), clamped.

    The clamp to ``[0, map_len - 1]`` is what torch's bilinear upsampling does at the borders:
    the outermost half cell of the image repeats the border cell.
    """
    src = (np.asarray(coords, dtype=np.float64) + 0.5) * (map_len / image_len) - 0.5
    return np.clip(src, 0.0, map_len - 1.0)


def axis_weights(coords: np.ndarray, image_len: int, map_len: int) -> Axis:
    """Bilinear weights of image coordinates along one axis of a ``map_len`` map."""
    src = map_coordinates(coords, image_len, map_len)
    i0 = np.minimum(np.floor(src).astype(np.intp), map_len - 1)
    i1 = np.minimum(i0 + 1, map_len - 1)
    return Axis(i0, i1, src - i0)


def check_map(feature_map: np.ndarray) -> np.ndarray:
    """A finite floating ``[C, h, w]`` map (integer maps become float32), else ValueError."""
    fmap = np.asarray(feature_map)
    if fmap.ndim != 3 or min(fmap.shape) == 0:
        raise ValueError(f"feature map must be [C, h, w], got shape {list(fmap.shape)}")
    if not np.issubdtype(fmap.dtype, np.floating):
        fmap = fmap.astype(np.float32)
    if not np.isfinite(fmap).all():
        raise ValueError("feature map contains NaN or infinite values")
    return fmap


def check_size(size: ImageSize) -> ImageSize:
    """``(width, height)`` as positive ints, else ValueError."""
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive (width, height), got {size!r}")
    return width, height


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by ``max(|row|, NORM_EPS)`` (a zero row stays zero), float32."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), NORM_EPS)
    return (v / norms).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Point features and target vectors


def point_features(
    feature_map: np.ndarray, points: np.ndarray, image_size: ImageSize
) -> np.ndarray:
    """Normalised features ``[N, C]`` of the upsampled map at sub-pixel ``points`` ``[N, 2]``.

    Exactly the vector ``F.normalize(F.interpolate(map, (H, W), mode="bilinear",
    align_corners=False), dim=1)[0, :, y, x]`` at integer ``(x, y)``; between pixels, the same
    bilinear surface evaluated at the real position (see the module docstring).
    """
    fmap = check_map(feature_map)
    width, height = check_size(image_size)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise ValueError(f"points must be finite [N, 2], got shape {list(pts.shape)}")
    _, h, w = fmap.shape
    ax, ay = axis_weights(pts[:, 0], width, w), axis_weights(pts[:, 1], height, h)
    fx, fy = ax.frac, ay.frac
    vec = (
        fmap[:, ay.i0, ax.i0] * ((1 - fy) * (1 - fx))
        + fmap[:, ay.i0, ax.i1] * ((1 - fy) * fx)
        + fmap[:, ay.i1, ax.i0] * (fy * (1 - fx))
        + fmap[:, ay.i1, ax.i1] * (fy * fx)
    )  # float64 [C, N]: the weights are float64
    return normalize_rows(vec.T)


def average_vectors(per_image: Sequence[np.ndarray]) -> np.ndarray:
    """Eq. 4's target vectors: mean of ``k`` normalised ``[N, C]`` point features, re-normalised.

    Each input is normalised row-wise first (so an unnormalised input cannot outweigh the
    others), the mean is taken, and the result normalised again (scores become cosines).
    """
    if len(per_image) == 0:
        raise ValueError("average_vectors needs at least one set of point features")
    stacked = np.stack([normalize_rows(v) for v in per_image]).astype(np.float64)
    return normalize_rows(stacked.mean(axis=0))
