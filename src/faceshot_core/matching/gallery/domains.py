"""Part crops and the per-part domain choice (FaceShot Sec. 3.2, Fig. 4).

Matching a cat against human target features goes wrong where the two look different, so each
part picks the gallery domain whose mean embedding (CLIP in the paper) is closest to the
reference's crop of that part.

Departure from the reference code: it crops the reference's parts with boxes asked from a 9.6B
vision-language model.  Here a part crop is the bounding box of the part's landmarks (from a
first matching pass, see :mod:`~faceshot_core.matching.gallery.two_pass`), squared and padded
by ``margin`` times its side on every side, then clipped to the image (so crops at the border
may be rectangular; image embedders resize anyway).
"""

from __future__ import annotations

import numpy as np

from faceshot_core.matching.base import ImageEmbedder
from faceshot_core.matching.gallery.model import Gallery, GalleryMismatchError
from faceshot_core.matching.sampling import normalize_rows
from faceshot_core.schema import PARTS

#: Padding of a part crop on each side, as a fraction of the part's (squared) box side.
DEFAULT_CROP_MARGIN = 0.25
#: Smallest crop side in pixels (a two-pixel eye box says nothing to an embedder).
MIN_CROP_SIDE = 16


def part_box(
    points: np.ndarray,
    part: str,
    image_size: tuple[int, int],
    *,
    margin: float = DEFAULT_CROP_MARGIN,
) -> tuple[int, int, int, int]:
    """Crop box ``(x0, y0, x1, y1)`` (end-exclusive) of ``part``: padded square, clipped."""
    pts = np.asarray(points, dtype=np.float64)[list(PARTS[part])]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    side = max(float((hi - lo).max()) * (1 + 2 * margin), MIN_CROP_SIDE)
    width, height = image_size
    x0 = int(np.clip(np.floor(centre[0] - side / 2), 0, width - 1))
    y0 = int(np.clip(np.floor(centre[1] - side / 2), 0, height - 1))
    x1 = int(np.clip(np.ceil(centre[0] + side / 2), x0 + 1, width))
    y1 = int(np.clip(np.ceil(centre[1] + side / 2), y0 + 1, height))
    return x0, y0, x1, y1


def part_crops(
    image: np.ndarray, points: np.ndarray, *, margin: float = DEFAULT_CROP_MARGIN
) -> dict[str, np.ndarray]:
    """The five part crops of ``image`` around ``points`` ``[68, 2]``, in :data:`PARTS` order."""
    height, width = image.shape[:2]
    crops = {}
    for part in PARTS:
        x0, y0, x1, y1 = part_box(points, part, (width, height), margin=margin)
        crops[part] = np.ascontiguousarray(image[y0:y1, x0:x1])
    return crops


def embed_parts(
    embedder: ImageEmbedder, image: np.ndarray, points: np.ndarray, margin: float
) -> np.ndarray:
    """Normalised ``[5, D]`` embeddings of the five part crops."""
    crops = part_crops(image, points, margin=margin)
    emb = np.asarray(embedder.embed(list(crops.values())), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(crops):
        raise ValueError(f"embedder returned shape {list(emb.shape)} for {len(crops)} crops")
    return normalize_rows(emb)


def domain_similarities(
    gallery: Gallery,
    embedder: ImageEmbedder,
    image: np.ndarray,
    points: np.ndarray,
    *,
    margin: float = DEFAULT_CROP_MARGIN,
) -> dict[str, dict[str, float]]:
    """Cosine similarity of each part crop with each of the part's domain mean embeddings."""
    gallery.check_compatible(embedder_name=embedder.name)
    emb = embed_parts(embedder, image, points, margin)
    if emb.shape[1] != gallery.embedding_dim:
        raise GalleryMismatchError(
            f"embedder {embedder.name!r} gives {emb.shape[1]} values, the gallery stores "
            f"{gallery.embedding_dim}"
        )
    out: dict[str, dict[str, float]] = {}
    for row, part in zip(emb, PARTS, strict=True):
        names = gallery.domains(part)
        means = normalize_rows(np.stack([gallery.parts[part][d].embedding for d in names]))
        out[part] = {d: float(s) for d, s in zip(names, means @ row, strict=True)}
    return out


def choose_domains(
    gallery: Gallery,
    embedder: ImageEmbedder,
    image: np.ndarray,
    points: np.ndarray,
    *,
    margin: float = DEFAULT_CROP_MARGIN,
) -> dict[str, str]:
    """Per part, the domain whose mean embedding is closest (cosine) to the part's crop."""
    sims = domain_similarities(gallery, embedder, image, points, margin=margin)
    return {part: max(scores, key=scores.__getitem__) for part, scores in sims.items()}
