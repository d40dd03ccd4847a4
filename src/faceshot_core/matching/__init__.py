"""Appearance-guided landmark matching: 68 landmarks on any character (FaceShot Sec. 3.2).

* :mod:`~faceshot_core.matching.base` - the protocols (FeatureExtractor, ImageEmbedder) and
  the FeatureSpec a gallery is tagged with;
* :mod:`~faceshot_core.matching.matcher` - Eq. 3-4: the :class:`Matcher`, built on
  :mod:`~faceshot_core.matching.sampling` (upsampled, normalised point features) and
  :mod:`~faceshot_core.matching.similarity` (argmax of the cosine similarity, computed in
  memory-bounded strips);
* :mod:`~faceshot_core.matching.gallery` - the appearance gallery (build, import, load), the
  per-part domain choice and two-pass matching;
* :mod:`~faceshot_core.matching.diffusion` / :mod:`~faceshot_core.matching.clip_embedder` /
  :mod:`~faceshot_core.matching.weights` - Stable Diffusion (+ IP-Adapter) features after DDIM
  inversion, CLIP image embeddings, and offline weight lookup;
* :mod:`~faceshot_core.matching.runtime` - the optional packages (torch, transformers,
  diffusers) and the device/dtype rule, on top of :mod:`faceshot_core.torch_support`;
* :mod:`~faceshot_core.matching.postprocess` - the reference code's optional re-spacing;
* :mod:`~faceshot_core.matching.tiny_models` / :mod:`~faceshot_core.matching.patch_extractor` -
  tiny architectures built in code and a torch-free patch extractor, for tests and benchmarks
  without weights.

Importing this package does not import torch or diffusers; they load on first use.
"""

from faceshot_core.matching.base import FeatureExtractor, FeatureSpec, ImageEmbedder
from faceshot_core.matching.gallery import (
    Gallery,
    GalleryError,
    GalleryMatch,
    GalleryMismatchError,
    build_gallery,
    import_reference_gallery,
    load_gallery,
    match_with_gallery,
)
from faceshot_core.matching.matcher import Matcher, match_points, point_features

__all__ = [
    "FeatureExtractor",
    "FeatureSpec",
    "Gallery",
    "GalleryError",
    "GalleryMatch",
    "GalleryMismatchError",
    "ImageEmbedder",
    "Matcher",
    "build_gallery",
    "import_reference_gallery",
    "load_gallery",
    "match_points",
    "match_with_gallery",
    "point_features",
]
