"""The appearance-guided matcher as one call: character image + gallery -> 68 landmarks.

Loading order is chosen so that cheap mistakes fail first: the gallery is read and validated
before any model weight is touched, and every missing weight file is reported at once.  With
an IP-Adapter (the paper's setting) the extractor's own CLIP image encoder also embeds the part
crops for the domain choice, so the 632M-parameter encoder is loaded once, not twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from faceshot_core.images import load_image
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.gallery import Gallery, GalleryMatch, load_gallery, match_with_gallery
from faceshot_core.matching.matcher import LandmarkMatch
from faceshot_core.matching.weights import IP_ADAPTER_REPO, SD15_REPO

PathLike = str | os.PathLike[str]
GALLERY_ENV = "FACESHOT_GALLERY"


@dataclass(frozen=True)
class MatchSettings:
    """Where the matcher's gallery and models are, and how to run them.

    ``model``: a Stable Diffusion folder or Hub id (found in the Hugging Face cache, never
    downloaded); ``ip_adapter``: the IP-Adapter folder or Hub id, ``None`` for the reference
    code's setting without image prompts (then ``image_encoder`` names the CLIP image encoder
    used for the domain choice, by default IP-Adapter's ViT-H-14).
    """

    gallery: PathLike | None = None
    model: str = SD15_REPO
    ip_adapter: str | None = IP_ADAPTER_REPO
    image_encoder: str | None = None
    device: str | None = None
    dtype: str | None = None
    respace: bool = False
    first_pass: Literal["average", "best"] = "average"
    hf_cache_dir: PathLike | None = None
    feature_cache_dir: PathLike | None = None

    def gallery_path(self) -> Path:
        """The gallery: the setting, else ``$FACESHOT_GALLERY``; a clear error when neither."""
        from faceshot_core.matching.gallery import GalleryError

        chosen = self.gallery or os.environ.get(GALLERY_ENV)
        if not chosen:
            raise GalleryError(
                "the appearance-guided matcher needs a gallery: give --gallery DIR (or set "
                f"{GALLERY_ENV}); build one with `faceshot gallery build` or convert the "
                "reference code's with `faceshot gallery import`"
            )
        return Path(chosen)


def load_models(settings: MatchSettings, *, embedder: bool = True) -> tuple[Any, Any]:
    """The feature extractor and (unless ``embedder`` is false) the CLIP image embedder."""
    from faceshot_core.matching.clip_embedder import ClipImageEmbedder
    from faceshot_core.matching.diffusion import DiffusionFeatureExtractor

    extractor = DiffusionFeatureExtractor.from_pretrained(
        settings.model,
        ip_adapter=settings.ip_adapter,
        device=settings.device,
        dtype=settings.dtype,
        hf_cache_dir=settings.hf_cache_dir,
        cache_dir=settings.feature_cache_dir,
    )
    if not embedder:
        return extractor, None
    clip = extractor.image_encoder
    if clip is None or settings.image_encoder is not None:
        clip = ClipImageEmbedder.from_pretrained(
            settings.image_encoder or settings.ip_adapter or IP_ADAPTER_REPO,
            device=settings.device,
            dtype=settings.dtype,
            cache_dir=settings.hf_cache_dir,
        )
    return extractor, clip


def match_landmarks(
    image: PathLike | np.ndarray,
    settings: MatchSettings,
    *,
    models: tuple[Any, Any] | None = None,
    gallery: Gallery | None = None,
) -> GalleryMatch:
    """68 landmarks of the character in ``image`` by appearance-guided matching.

    ``models`` and ``gallery`` may be passed in to reuse them across calls (or to run the
    matcher with other extractors, such as the tiny models of the tests).
    """
    pixels = image if isinstance(image, np.ndarray) else load_image(image)
    gal = gallery if gallery is not None else load_gallery(settings.gallery_path())
    extractor, embedder = models if models is not None else load_models(settings)
    return match_with_gallery(
        pixels, extractor, embedder, gal, first_pass=settings.first_pass, respace=settings.respace
    )


def match_with_targets(
    image: PathLike | np.ndarray,
    targets: PathLike,
    settings: MatchSettings,
    *,
    models: tuple[Any, Any] | None = None,
) -> LandmarkMatch:
    """The paper's own setting (Eq. 3-4): match against ``k`` annotated target images.

    ``targets`` is a folder of images, each with a 68-point file of the same stem.  Target
    features are extracted with the character as IP-Adapter image prompt and the character's
    with the first target as prompt; no gallery, no domain choice.  Slower than a gallery (the
    targets are extracted for every character) but exactly the paper's Eq. 3.
    """
    from faceshot_core.landmark_files import load_face
    from faceshot_core.matching.gallery import GalleryError, annotated_images
    from faceshot_core.matching.matcher import Matcher
    from faceshot_core.matching.postprocess import respace

    folder = Path(targets)
    if not folder.is_dir():
        raise GalleryError(f"targets {folder} is not a folder of annotated images")
    pairs = []
    for image_path, landmark_path in annotated_images(folder):
        pixels = load_image(image_path)
        h, w = pixels.shape[:2]
        pairs.append((pixels, load_face(landmark_path, image_size=(w, h))))
    reference = image if isinstance(image, np.ndarray) else load_image(image)
    extractor, _ = models if models is not None else load_models(settings, embedder=False)
    result = Matcher(extractor).match_targets(reference, pairs)
    if settings.respace:
        fixed = FaceLandmarks(respace(result.landmarks.points), result.landmarks.image_size)
        return LandmarkMatch(fixed, result.scores)
    return result
