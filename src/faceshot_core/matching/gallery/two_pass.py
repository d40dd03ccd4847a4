"""Two-pass matching with a gallery: match, crop the parts, choose domains, match again.

The reference code crops the reference's parts with boxes asked from a 9.6B vision-language
model.  :func:`match_with_gallery` instead matches twice: pass 1 with every part's features
averaged over all domains (each domain weighted equally, so a large domain does not drown the
others) or, with ``first_pass="best"``, with each domain separately keeping each landmark's
best-scoring match; then it crops the parts around the pass-1 landmarks, chooses domains
(:mod:`~faceshot_core.matching.gallery.domains`), and pass 2 matches with the chosen domains'
features on the same reference feature map (one extraction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.base import FeatureExtractor, ImageEmbedder
from faceshot_core.matching.gallery.domains import DEFAULT_CROP_MARGIN, domain_similarities
from faceshot_core.matching.gallery.model import Gallery
from faceshot_core.matching.matcher import LandmarkMatch, Matcher
from faceshot_core.matching.similarity import match_points
from faceshot_core.schema import NUM_POINTS, PARTS


@dataclass(frozen=True)
class GalleryMatch:
    """Result of :func:`match_with_gallery`.

    ``scores`` are the pass-2 cosine similarities of the matched points (before any
    re-spacing); ``domain_scores`` the part-crop similarities that chose ``domains``;
    ``first_pass`` the all-domain landmarks the crops came from.
    """

    landmarks: FaceLandmarks
    scores: np.ndarray
    domains: dict[str, str]
    domain_scores: dict[str, dict[str, float]]
    first_pass: FaceLandmarks


FirstPass = Literal["average", "best"]


def match_with_gallery(
    image: np.ndarray,
    extractor: FeatureExtractor,
    embedder: ImageEmbedder,
    gallery: Gallery,
    *,
    first_pass: FirstPass = "average",
    refine: bool = False,
    respace: bool = False,
    margin: float = DEFAULT_CROP_MARGIN,
) -> GalleryMatch:
    """Two-pass gallery matching: a first match, crop, choose domains, match again.

    ``first_pass="average"`` matches with every part's features averaged over its domains
    (:meth:`Gallery.target_vectors` with no choice).  That presumes the domains' features agree
    at each landmark, which semantic (diffusion) features are meant to do; where they do not -
    the paper's own premise is that appearance gaps cause mismatches - the average can match
    nothing well and the crops land anywhere.  ``first_pass="best"`` matches each landmark
    with every domain of its part and keeps the best-scoring match (one call, ``D`` times the
    target vectors; no extra extraction), which is robust to that.

    One feature extraction serves both passes.  ``respace`` applies the reference code's
    optional clean-up (:func:`faceshot_core.matching.postprocess.respace`) to the result.
    """
    gallery.check_compatible(extractor.spec, embedder.name)
    matcher = Matcher(extractor, refine=refine)
    fmap = matcher.feature_maps([image])[0]
    if first_pass == "average":
        first = matcher.match(image, gallery.target_vectors(None), feature_map=fmap)
    elif first_pass == "best":
        first = _best_domain_match(matcher, image, fmap, gallery)
    else:
        raise ValueError(f"first_pass must be 'average' or 'best', got {first_pass!r}")
    sims = domain_similarities(gallery, embedder, image, first.landmarks.points, margin=margin)
    domains = {part: max(scores, key=scores.__getitem__) for part, scores in sims.items()}
    if all(len(gallery.domains(p)) == 1 for p in PARTS):
        second = first  # nothing to choose: pass 2 would repeat pass 1
    else:
        second = matcher.match(image, gallery.target_vectors(domains), feature_map=fmap)
    landmarks = second.landmarks
    if respace:
        from faceshot_core.matching.postprocess import respace as respace_points

        landmarks = FaceLandmarks(
            respace_points(landmarks.points), landmarks.image_size, landmarks.source
        )
    return GalleryMatch(landmarks, second.scores, domains, sims, first.landmarks)


def _best_domain_match(
    matcher: Matcher, image: np.ndarray, fmap: np.ndarray, gallery: Gallery
) -> LandmarkMatch:
    """Each landmark matched with every domain of its part; the best-scoring match kept."""
    vectors: list[np.ndarray] = []
    owners: list[int] = []
    for part, indices in PARTS.items():
        for domain in gallery.domains(part):
            vectors.append(gallery.part_vectors(part, domain))
            owners.extend(indices)
    height, width = image.shape[:2]
    found = match_points(
        fmap,
        (width, height),
        np.concatenate(vectors),
        refine=matcher.refine,
        method=matcher.method,
        strip_bytes=matcher.strip_bytes,
    )
    points = np.zeros((NUM_POINTS, 2), dtype=np.float32)
    scores = np.full(NUM_POINTS, -np.inf, dtype=np.float32)
    for row, owner in enumerate(owners):
        if found.scores[row] > scores[owner]:
            points[owner], scores[owner] = found.points[row], found.scores[row]
    landmarks = FaceLandmarks(points, (width, height), "matched landmarks (best domain)")
    return LandmarkMatch(landmarks, scores)
