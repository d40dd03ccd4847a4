"""The matching arithmetic of FaceShot's appearance-guided landmark matcher (Eq. 3-4).

Eq. 4 in words: upsample the reference and target feature maps bilinearly to their images'
sizes, L2-normalise every pixel's feature vector; for landmark ``i``, average the target
features at that landmark over ``k`` target images; the reference landmark is the pixel of the
reference image whose feature has the largest cosine similarity with that average.

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

Memory and speed
----------------
The upsampled reference map is never materialised: a 512x512 image with 1280 channels would
be 1.3 GB.  The image is processed in strips of rows whose size follows a byte budget.  Two
exact ways to compute a strip are offered:

* ``method="factored"`` (default): bilinear upsampling is linear, so the *dot product* of a
  target vector with an upsampled pixel is the upsampled low-resolution dot-product map, and
  the *squared norm* of an upsampled pixel is ``w^T G w`` for the four bilinear weights ``w``
  and the 4x4 Gram matrix ``G`` of the four map cells around it.  Both need only ``O(C h w)``
  work at the map's resolution plus ``O(N H W)`` at the image's: for SD's 1280x32x32 maps and
  68 landmarks on 512x512, 0.2-0.6 s on a 2-core CPU against 4.5 s for the direct way, both
  within the 64 MB strip budget (peak about 60 MB, where the whole map is 1.3 GB).  Dot
  products are float32; norms are accumulated in float64 (``w^T G w`` can cancel when
  neighbouring features point in opposite directions).
* ``method="direct"``: upsample the strip's features, normalise them and take dot products
  (float32) - the textbook computation, kept as a cross-check.

Both return identical argmaxes up to float rounding (see the tests).  numpy only: torch is not
needed for speed once the arithmetic is factored.

Eq. 3 (which image prompt goes with which image)
------------------------------------------------
:class:`Matcher` offers both modes.  :meth:`Matcher.match_targets` is the paper's: every target
image's features are extracted with the *reference* as image prompt, and the reference's with a
target (the first one; the paper has one target per equation and is silent about ``k > 1``) as
prompt.  A gallery cannot do that, because its target features are computed before any
reference exists; :meth:`Matcher.match` with stored target vectors is the reference code's way
(its default SD 2.1 model has no image prompt at all): see :mod:`faceshot_core.matching.gallery`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.base import FeatureExtractor
from faceshot_core.schema import NUM_POINTS

ImageSize = tuple[int, int]
"""``(width, height)`` in pixels."""

Method = Literal["factored", "direct"]

#: Lower bound of a norm before dividing, as in ``torch.nn.functional.normalize``.
NORM_EPS = 1e-12
#: Default working-memory budget of one strip of the similarity computation.
DEFAULT_STRIP_BYTES = 64 * 1024 * 1024
#: Channels per chunk when accumulating Gram terms in float64 (bounds the float64 copies).
_CHANNEL_CHUNK = 256


class PointMatch(NamedTuple):
    """Matched points ``[N, 2]`` (float32 pixels) and their cosine similarities ``[N]``."""

    points: np.ndarray
    scores: np.ndarray


# ---------------------------------------------------------------------------------------------
# Pixel geometry


@dataclass(frozen=True)
class _Axis:
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


def _axis(coords: np.ndarray, image_len: int, map_len: int) -> _Axis:
    src = map_coordinates(coords, image_len, map_len)
    i0 = np.minimum(np.floor(src).astype(np.intp), map_len - 1)
    i1 = np.minimum(i0 + 1, map_len - 1)
    return _Axis(i0, i1, src - i0)


def _check_map(feature_map: np.ndarray) -> np.ndarray:
    fmap = np.asarray(feature_map)
    if fmap.ndim != 3 or min(fmap.shape) == 0:
        raise ValueError(f"feature map must be [C, h, w], got shape {list(fmap.shape)}")
    if not np.issubdtype(fmap.dtype, np.floating):
        fmap = fmap.astype(np.float32)
    if not np.isfinite(fmap).all():
        raise ValueError("feature map contains NaN or infinite values")
    return fmap


def _check_size(size: ImageSize) -> ImageSize:
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
    fmap = _check_map(feature_map)
    width, height = _check_size(image_size)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise ValueError(f"points must be finite [N, 2], got shape {list(pts.shape)}")
    _, h, w = fmap.shape
    ax, ay = _axis(pts[:, 0], width, w), _axis(pts[:, 1], height, h)
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


# ---------------------------------------------------------------------------------------------
# Similarity strips


def _chunked_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the channel axis (axis 0) of ``a * b`` in float64, chunk by chunk."""
    out = np.zeros(a.shape[1:], dtype=np.float64)
    for c in range(0, a.shape[0], _CHANNEL_CHUNK):
        a64 = a[c : c + _CHANNEL_CHUNK].astype(np.float64)
        b64 = b[c : c + _CHANNEL_CHUNK].astype(np.float64)
        out += np.einsum("c...,c...->...", a64, b64)
    return out


def _row_pair_terms(fmap: np.ndarray, r0: int, r1: int, ax: _Axis) -> np.ndarray:
    """Gram terms of the bilinear cells between map rows ``r0`` and ``r1``, per image column.

    Returns ``[10, W]``: ``<a,a>, <b,b>, <c,c>, <d,d>, <a,b>, <c,d>, <a,c>, <b,d>, <a,d>,
    <b,c>`` for the corners ``a = (r0, x0)``, ``b = (r0, x1)``, ``c = (r1, x0)``, ``d = (r1, x1)``.
    Border cells need no special case: the right neighbour of the last column is clamped to
    itself exactly as ``x1`` is, and ``r1 == r0`` on the last row.
    """
    top, bot = fmap[:, r0, :], fmap[:, r1, :]  # [C, w]
    right = np.minimum(np.arange(top.shape[1]) + 1, top.shape[1] - 1)
    top_r, bot_r = top[:, right], bot[:, right]
    s_top, s_bot = _chunked_dot(top, top), _chunked_dot(bot, bot)
    h_top, h_bot = _chunked_dot(top, top_r), _chunked_dot(bot, bot_r)
    vert, diag, anti = _chunked_dot(top, bot), _chunked_dot(top, bot_r), _chunked_dot(top_r, bot)
    x0, x1 = ax.i0, ax.i1
    corners = (s_top[x0], s_top[x1], s_bot[x0], s_bot[x1])
    pairs = (h_top[x0], h_bot[x0], vert[x0], vert[x1], diag[x0], anti[x0])
    return np.stack(corners + pairs)


def _squared_norms(terms: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """``w^T G w`` for rows with vertical fractions ``fy`` [R] and columns ``fx`` [W]."""
    wa = (1 - fy)[:, None] * (1 - fx)[None, :]
    wb = (1 - fy)[:, None] * fx[None, :]
    wc = fy[:, None] * (1 - fx)[None, :]
    wd = fy[:, None] * fx[None, :]
    aa, bb, cc, dd, ab, cd, ac, bd, ad, bc = terms  # each [R, W]
    sq = wa * wa * aa + wb * wb * bb + wc * wc * cc + wd * wd * dd
    sq += 2 * (
        wa * wb * ab + wc * wd * cd + wa * wc * ac + wb * wd * bd + wa * wd * ad + wb * wc * bc
    )
    return np.maximum(sq, 0.0)


def _strip_factored(fmap: np.ndarray, targets: np.ndarray, ay: _Axis, ax: _Axis) -> np.ndarray:
    """Cosine similarities ``[N, R, W]`` of the strip's rows (``ay``) by the factored method.

    Numerator: dot products at the map's resolution (one matrix product over the strip's map
    rows), interpolated like the map.  Denominator: per-pixel norms from the cells' Gram terms.
    """
    lo, hi = int(ay.i0.min()), int(ay.i1.max())
    block = fmap[:, lo : hi + 1, :]
    c, r, w = block.shape
    low = (targets.astype(np.float32) @ block.reshape(c, r * w)).reshape(-1, r, w)
    fy = ay.frac.astype(np.float32)[None, :, None]
    rows = low[:, ay.i0 - lo, :] * (1 - fy) + low[:, ay.i1 - lo, :] * fy  # [N, R, w]
    fx = ax.frac.astype(np.float32)
    numer = rows[:, :, ax.i0] * (1 - fx) + rows[:, :, ax.i1] * fx  # [N, R, W]
    pairs, inverse = np.unique(np.stack([ay.i0, ay.i1], axis=1), axis=0, return_inverse=True)
    pair_terms = np.stack([_row_pair_terms(fmap, int(r0), int(r1), ax) for r0, r1 in pairs])
    terms = pair_terms[inverse.reshape(-1)].transpose(1, 0, 2)  # [10, R, W]
    norms = np.sqrt(_squared_norms(terms, ay.frac, ax.frac))
    numer /= np.maximum(norms, NORM_EPS).astype(np.float32)[None]
    return numer


def _strip_direct(fmap: np.ndarray, targets: np.ndarray, ay: _Axis, ax: _Axis) -> np.ndarray:
    """Cosine similarities ``[N, R, W]``: upsample the strip, normalise, dot (float32)."""
    fy = ay.frac.astype(np.float32)[None, :, None]
    rows = fmap[:, ay.i0, :] * (1 - fy) + fmap[:, ay.i1, :] * fy  # [C, R, w]
    fx = ax.frac.astype(np.float32)
    up = rows[:, :, ax.i0] * (1 - fx) + rows[:, :, ax.i1] * fx  # [C, R, W]
    up = up.astype(np.float32, copy=False)
    up /= np.maximum(np.sqrt(np.einsum("crw,crw->rw", up, up)), NORM_EPS)[None]
    c, r, w = up.shape
    return (targets.astype(np.float32) @ up.reshape(c, r * w)).reshape(-1, r, w)


_STRIP_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, _Axis, _Axis], np.ndarray]] = {
    "factored": _strip_factored,
    "direct": _strip_direct,
}


def _rows_per_strip(method: str, fmap: np.ndarray, n: int, width: int, budget: int) -> int:
    """How many image rows fit in ``budget`` bytes of strip working memory."""
    if method == "direct":
        per_row = width * (fmap.shape[0] * 4 * 3 + n * 4)  # rows, upsampled, sims
    else:
        per_row = width * (8 * 16 + 4 * 5 * n)  # Gram terms and norms, dot-product strips
    return max(1, budget // max(per_row, 1))


def _iter_strips(
    fmap: np.ndarray,
    size: ImageSize,
    targets: np.ndarray,
    method: str,
    strip_rows: int | None,
    strip_bytes: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, similarities [N, R, W])`` strip by strip, top to bottom."""
    if method not in _STRIP_FUNCTIONS:
        raise ValueError(f"method must be one of {sorted(_STRIP_FUNCTIONS)}, got {method!r}")
    if strip_rows is not None and strip_rows < 1:
        raise ValueError(f"strip_rows must be at least 1, got {strip_rows}")
    width, height = size
    _, h, w = fmap.shape
    strip = _STRIP_FUNCTIONS[method]
    rows = strip_rows or _rows_per_strip(method, fmap, len(targets), width, strip_bytes)
    ax = _axis(np.arange(width), width, w)
    for y0 in range(0, height, rows):
        ys = np.arange(y0, min(y0 + rows, height))
        yield y0, strip(fmap, targets, _axis(ys, height, h), ax)


def _check_targets(target_vectors: np.ndarray, channels: int) -> np.ndarray:
    t = np.asarray(target_vectors)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != channels:
        raise ValueError(
            f"target vectors must be [N, {channels}] for a {channels}-channel map, "
            f"got shape {list(t.shape)}"
        )
    if not np.isfinite(t).all():
        raise ValueError("target vectors contain NaN or infinite values")
    return normalize_rows(t)


# ---------------------------------------------------------------------------------------------
# Eq. 4


def match_points(
    reference_map: np.ndarray,
    reference_size: ImageSize,
    target_vectors: np.ndarray,
    *,
    refine: bool = False,
    method: Method = "factored",
    strip_rows: int | None = None,
    strip_bytes: int = DEFAULT_STRIP_BYTES,
) -> PointMatch:
    """Eq. 4: for each target vector, the reference pixel of highest cosine similarity.

    ``reference_map`` is the reference's raw ``[C, h, w]`` feature map and ``reference_size``
    its image's ``(width, height)``; ``target_vectors`` ``[N, C]`` are normalised here (a zero
    vector matches nothing and returns pixel (0, 0) with score 0).  Every pixel of the image
    is a candidate; ties go to the first pixel in row-major order.  ``refine`` moves each
    argmax by a 1-D parabola fit per axis through its 3x3 neighbourhood (at most half a pixel),
    which the paper does not do.  ``strip_rows`` forces the strip height (else it follows
    ``strip_bytes``); it never changes the result.
    """
    fmap = _check_map(reference_map)
    size = _check_size(reference_size)
    targets = _check_targets(target_vectors, fmap.shape[0])
    n = len(targets)
    best = np.full(n, -np.inf)
    best_index = np.zeros(n, dtype=np.intp)
    for y0, sims in _iter_strips(fmap, size, targets, method, strip_rows, strip_bytes):
        flat = sims.reshape(n, -1)
        index = flat.argmax(axis=1)
        value = flat[np.arange(n), index]
        better = value > best
        best[better] = value[better]
        best_index[better] = index[better] + y0 * size[0]
    points = np.stack([best_index % size[0], best_index // size[0]], axis=1).astype(np.float64)
    if refine and n:
        points = _refine(fmap, size, targets, points)
        best = np.einsum("nc,nc->n", point_features(fmap, points, size), targets)
    return PointMatch(points.astype(np.float32), best.astype(np.float32))


def similarity_map(
    reference_map: np.ndarray,
    reference_size: ImageSize,
    target_vector: np.ndarray,
    *,
    method: Method = "factored",
    strip_bytes: int = DEFAULT_STRIP_BYTES,
) -> np.ndarray:
    """Cosine similarity ``[H, W]`` of one target vector with every reference pixel.

    For inspection (the paper's Fig. 16 plots these); :func:`match_points` does not need it.
    """
    fmap = _check_map(reference_map)
    width, height = _check_size(reference_size)
    targets = _check_targets(target_vector, fmap.shape[0])[:1]
    out = np.empty((height, width), dtype=np.float32)
    for y0, sims in _iter_strips(fmap, (width, height), targets, method, None, strip_bytes):
        out[y0 : y0 + sims.shape[1]] = sims[0]
    return out


def _parabola_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Vertex offset of the parabola through (-1, left), (0, centre), (1, right), in [-0.5, 0.5].

    Zero where the three values do not make a peak (flat or convex), so a plateau never moves.
    """
    denom = left - 2.0 * centre + right
    peak = denom < -1e-12
    offset = np.where(peak, 0.5 * (left - right) / np.where(peak, denom, -1.0), 0.0)
    return np.clip(offset, -0.5, 0.5)


def _refine(
    fmap: np.ndarray, size: ImageSize, targets: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Sub-pixel argmax: separable parabola fits on the exact upsampled similarity."""

    def sim_at(offset: tuple[int, int]) -> np.ndarray:
        moved = np.clip(points + offset, 0, (size[0] - 1, size[1] - 1))
        return np.einsum("nc,nc->n", point_features(fmap, moved, size), targets).astype(float)

    centre = sim_at((0, 0))
    refined = points.copy()
    for axis, limit in ((0, size[0] - 1), (1, size[1] - 1)):
        step = np.zeros(2, dtype=int)
        step[axis] = 1
        minus, plus = sim_at((-step[0], -step[1])), sim_at((step[0], step[1]))
        inside = (points[:, axis] > 0) & (points[:, axis] < limit)
        refined[:, axis] += np.where(inside, _parabola_offset(minus, centre, plus), 0.0)
    return refined


# ---------------------------------------------------------------------------------------------
# The matcher


@dataclass(frozen=True)
class LandmarkMatch:
    """68 matched landmarks and, per landmark, the cosine similarity that chose it."""

    landmarks: FaceLandmarks
    scores: np.ndarray


Target = tuple[np.ndarray, FaceLandmarks]
"""A target image (RGB uint8) with its annotated 68 landmarks."""


class Matcher:
    """Appearance-guided landmark matching with a :class:`FeatureExtractor` (Eq. 3-4).

    Two ways to get target vectors, two ways to match:

    * :meth:`match_targets` - the paper: target images at hand, each extracted with the
      reference as image prompt, the reference with the first target as prompt.
    * :meth:`target_vectors` + :meth:`match` - precomputed vectors (a gallery's stored averages,
      as in the reference code), the reference extracted without an image prompt unless one is
      given.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        *,
        refine: bool = False,
        method: Method = "factored",
        strip_bytes: int = DEFAULT_STRIP_BYTES,
    ) -> None:
        self.extractor = extractor
        self.refine = refine
        self.method: Method = method
        self.strip_bytes = strip_bytes

    @property
    def channels(self) -> int:
        return int(self.extractor.spec.channels)

    def feature_maps(
        self, images: Sequence[np.ndarray], prompts: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """The extractor's maps, checked against its spec (count, rank, channels)."""
        maps = self.extractor.feature_maps(list(images), prompts)
        if len(maps) != len(images):
            raise ValueError(
                f"extractor returned {len(maps)} feature maps for {len(images)} images"
            )
        for fmap in maps:
            shape = np.shape(fmap)
            if len(shape) != 3 or shape[0] != self.channels:
                raise ValueError(
                    f"extractor returned a map of shape {list(shape)}; its spec says "
                    f"[{self.channels}, h, w]"
                )
        return [_check_map(m) for m in maps]

    def target_vectors(
        self, targets: Sequence[Target], *, prompt: np.ndarray | None = None
    ) -> np.ndarray:
        """Eq. 4's ``[68, C]`` averages over ``k`` annotated targets (``prompt``: Eq. 3's c')."""
        if not targets:
            raise ValueError("target_vectors needs at least one annotated target image")
        for k, (image, landmarks) in enumerate(targets):
            _check_target_size(image, landmarks, k)
        maps = self.feature_maps([img for img, _ in targets], [prompt] * len(targets))
        return average_vectors(
            [
                point_features(fmap, lms.points, lms.image_size)
                for fmap, (_, lms) in zip(maps, targets, strict=True)
            ]
        )

    def match(
        self,
        image: np.ndarray,
        target_vectors: np.ndarray,
        *,
        feature_map: np.ndarray | None = None,
        prompt: np.ndarray | None = None,
        source: str = "matched landmarks",
    ) -> LandmarkMatch:
        """68 landmarks on ``image`` for ``[68, C]`` target vectors.

        ``feature_map`` reuses an already extracted reference map (two-pass gallery matching
        matches twice on one extraction); otherwise it is extracted with ``prompt``.
        """
        vectors = np.asarray(target_vectors)
        if vectors.shape[0] != NUM_POINTS:
            raise ValueError(f"expected {NUM_POINTS} target vectors, got {vectors.shape[0]}")
        height, width = image.shape[:2]
        fmap = feature_map if feature_map is not None else self.feature_maps([image], [prompt])[0]
        found = match_points(
            fmap,
            (width, height),
            vectors,
            refine=self.refine,
            method=self.method,
            strip_bytes=self.strip_bytes,
        )
        return LandmarkMatch(FaceLandmarks(found.points, (width, height), source), found.scores)

    def match_targets(self, image: np.ndarray, targets: Sequence[Target]) -> LandmarkMatch:
        """The paper's Eq. 3-4 with target images at hand (``k = len(targets)``).

        Target features use the reference ``image`` as image prompt; the reference's features
        use the first target image as prompt.
        """
        vectors = self.target_vectors(targets, prompt=image)
        fmap = self.feature_maps([image], [targets[0][0]])[0]
        return self.match(image, vectors, feature_map=fmap)


def _check_target_size(image: np.ndarray, landmarks: FaceLandmarks, k: int) -> None:
    height, width = np.shape(image)[:2]
    if tuple(landmarks.image_size) != (width, height):
        raise ValueError(
            f"target {k}: landmarks are for a {landmarks.image_size[0]}x"
            f"{landmarks.image_size[1]} image, the image is {width}x{height}"
        )
