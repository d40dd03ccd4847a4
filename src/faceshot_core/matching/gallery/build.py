"""Building a gallery from ``root/<domain>/`` folders of annotated images.

Per domain and part, the gallery stores the Eq. 4 average of the images' normalised point
features and the mean normalised embedding of the part crops; every domain serves every part.

Departure from the paper: Eq. 3 asks for target features extracted with the *reference* as image
prompt.  Stored features cannot depend on a reference that does not exist yet, so
:func:`build_gallery` extracts target features without an image prompt - what the reference
code's default (SD 2.1, no IP-Adapter) does too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceshot_core.images import load_image
from faceshot_core.landmark_files import SUFFIXES as LANDMARK_SUFFIXES
from faceshot_core.landmark_files import load_face
from faceshot_core.matching.base import FeatureExtractor, FeatureSpec, ImageEmbedder
from faceshot_core.matching.gallery.domains import DEFAULT_CROP_MARGIN, embed_parts
from faceshot_core.matching.gallery.model import DOMAIN_NAME, Gallery, GalleryDomain, GalleryError
from faceshot_core.matching.gallery.store import check_gallery_output, save_gallery
from faceshot_core.matching.matcher import Matcher
from faceshot_core.matching.sampling import point_features
from faceshot_core.progress import ProgressSink, report
from faceshot_core.schema import PARTS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class _Accumulator:
    features: np.ndarray  # [68, C] sum of normalised point features
    embeddings: np.ndarray  # [5, D] sum of normalised part-crop embeddings
    count: int = 0


def _domain_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise GalleryError(f"gallery source {root} does not exist or is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise GalleryError(
            f"{root} has no domain sub-folders; expected {root}/<domain>/ with annotated images"
        )
    for folder in folders:
        if not DOMAIN_NAME.match(folder.name):
            raise GalleryError(f"{folder}: invalid domain name {folder.name!r}")
    return folders


def annotated_images(folder: Path) -> list[tuple[Path, Path]]:
    """``(image, landmark file)`` pairs of a domain folder; every image needs its landmarks."""
    images = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise GalleryError(f"domain folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    pairs = []
    for image in images:
        found = [
            c
            for c in (image.with_suffix(s) for s in LANDMARK_SUFFIXES)
            if c.is_file() or c.with_suffix(c.suffix.upper()).is_file()
        ]
        if not found:
            raise GalleryError(
                f"{image} has no landmark file (expected {image.stem} with one of "
                f"{', '.join(LANDMARK_SUFFIXES)} beside it)"
            )
        if len(found) > 1:
            raise GalleryError(
                f"{image} has several landmark files ({', '.join(p.name for p in found)}); keep one"
            )
        landmark = found[0] if found[0].is_file() else found[0].with_suffix(found[0].suffix.upper())
        pairs.append((image, landmark))
    return pairs


def build_gallery(
    root: str | os.PathLike[str],
    extractor: FeatureExtractor,
    embedder: ImageEmbedder,
    output: str | os.PathLike[str],
    *,
    progress: ProgressSink | None = None,
    margin: float = DEFAULT_CROP_MARGIN,
    note: str | None = None,
    overwrite: bool = True,
) -> Gallery:
    """Build a gallery from ``root/<domain>/`` folders of annotated images and write it.

    Each image needs a 68-point landmark file with the same stem (faceshot JSON, ``.npz``,
    ``.npy``, ``.pts`` or ``.txt``).  Per domain and part: the Eq. 4 average of the images'
    normalised point features (extracted without an image prompt, see the module docstring)
    and the mean normalised embedding of the part crops.  Every domain serves every part.
    ``progress`` receives a :class:`~faceshot_core.progress.ProgressEvent` (stage
    ``"building"``, unit ``"images"``) after each image.
    """
    root_path = Path(root)
    plan = [(folder.name, annotated_images(folder)) for folder in _domain_folders(root_path)]
    check_gallery_output(Path(output), overwrite)  # fail before the long part
    total = sum(len(pairs) for _, pairs in plan)
    matcher = Matcher(extractor)
    sums: dict[str, _Accumulator] = {}
    done = 0
    for domain, pairs in plan:
        for image_path, landmark_path in pairs:
            features, embeddings = _image_contribution(
                matcher, embedder, image_path, landmark_path, margin
            )
            acc = sums.setdefault(
                domain, _Accumulator(np.zeros_like(features), np.zeros_like(embeddings))
            )
            if acc.embeddings.shape != embeddings.shape:
                raise ValueError(f"embedder {embedder.name!r} changed its embedding size")
            acc.features += features
            acc.embeddings += embeddings
            acc.count += 1
            done += 1
            report(progress, "building", done, total, "images")
    gallery = _gallery_from_sums(sums, extractor.spec, embedder.name, note)
    save_gallery(gallery, output, overwrite=overwrite)
    return gallery


def _image_contribution(
    matcher: Matcher,
    embedder: ImageEmbedder,
    image_path: Path,
    landmark_path: Path,
    margin: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One annotated image's normalised point features ``[68, C]`` and part embeddings."""
    image = load_image(image_path)
    height, width = image.shape[:2]
    landmarks = load_face(landmark_path, image_size=(width, height))
    fmap = matcher.feature_maps([image])[0]
    features = point_features(fmap, landmarks.points, (width, height)).astype(np.float64)
    embeddings = embed_parts(embedder, image, landmarks.points, margin).astype(np.float64)
    return features, embeddings


def _gallery_from_sums(
    sums: Mapping[str, _Accumulator], spec: FeatureSpec, embedder: str, note: str | None
) -> Gallery:
    parts: dict[str, dict[str, GalleryDomain]] = {part: {} for part in PARTS}
    for domain, acc in sums.items():
        for p, (part, indices) in enumerate(PARTS.items()):
            parts[part][domain] = GalleryDomain(
                (acc.features[list(indices)] / acc.count).astype(np.float32),
                (acc.embeddings[p] / acc.count).astype(np.float32),
                acc.count,
            )
    return Gallery(spec, embedder, parts, note=note)
