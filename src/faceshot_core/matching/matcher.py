"""FaceShot's appearance-guided landmark matcher (Eq. 3-4): :class:`Matcher`.

Eq. 4 in words: upsample the reference and target feature maps bilinearly to their images'
sizes, L2-normalise every pixel's feature vector; for landmark ``i``, average the target
features at that landmark over ``k`` target images; the reference landmark is the pixel of the
reference image whose feature has the largest cosine similarity with that average.  The
arithmetic lives in two modules this one builds on: :mod:`~faceshot_core.matching.sampling`
(the pixel convention, point features, target vectors) and
:mod:`~faceshot_core.matching.similarity` (the argmax over every pixel, in memory-bounded
strips).  Their public names are re-exported here.

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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.base import FeatureExtractor
from faceshot_core.matching.sampling import (
    NORM_EPS,
    ImageSize,
    average_vectors,
    check_map,
    map_coordinates,
    normalize_rows,
    point_features,
)
from faceshot_core.matching.similarity import (
    DEFAULT_STRIP_BYTES,
    Method,
    PointMatch,
    match_points,
    similarity_map,
)
from faceshot_core.schema import NUM_POINTS

__all__ = [
    "DEFAULT_STRIP_BYTES",
    "NORM_EPS",
    "ImageSize",
    "LandmarkMatch",
    "Matcher",
    "Method",
    "PointMatch",
    "Target",
    "average_vectors",
    "map_coordinates",
    "match_points",
    "normalize_rows",
    "point_features",
    "similarity_map",
]


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
        return [check_map(m) for m in maps]

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
