"""The appearance gallery (FaceShot Sec. 3.2, App. A): stored target features per part, domain.

Matching a cat against human target features goes wrong where the two look different (Fig. 4).
The gallery holds, for each of the five parts (:data:`~faceshot_core.schema.PARTS`) and each
*domain* (human, cat, anime, toy ...), the Eq. 4 average of the part's landmark features over the
domain's ``k`` annotated images, plus the mean image embedding (CLIP in the paper) of the part
crops.  For a reference image, each part picks the domain whose mean embedding is closest to
the reference's crop of that part, and Eq. 4 runs with the chosen domains' features.

One module per job, imported one way (model <- store <- build / reference_code, and
model <- domains <- two_pass):

* :mod:`.model` - :class:`Gallery` and its validation, the errors;
* :mod:`.store` - the on-disk format (``gallery.json`` + ``gallery.safetensors``, described
  in ``docs/gallery-format.md``): :func:`save_gallery`, :func:`load_gallery`;
* :mod:`.domains` - part crops and the per-part domain choice;
* :mod:`.two_pass` - :func:`match_with_gallery`, the two-pass matching that replaces the
  reference code's vision-language part boxes;
* :mod:`.build` - :func:`build_gallery` from folders of annotated images;
* :mod:`.reference_code` - :func:`import_reference_gallery` of the reference code's
  ``target_domains``.

Each module's docstring says where it departs from the paper and the reference code.
"""

from faceshot_core.matching.gallery.build import IMAGE_SUFFIXES, annotated_images, build_gallery
from faceshot_core.matching.gallery.domains import (
    DEFAULT_CROP_MARGIN,
    MIN_CROP_SIDE,
    choose_domains,
    domain_similarities,
    part_box,
    part_crops,
)
from faceshot_core.matching.gallery.model import (
    Gallery,
    GalleryDomain,
    GalleryError,
    GalleryMismatchError,
)
from faceshot_core.matching.gallery.reference_code import (
    PART_ALIASES,
    REFERENCE_CODE_SPEC,
    import_reference_gallery,
    part_for_folder,
)
from faceshot_core.matching.gallery.store import (
    FORMAT_NAME,
    JSON_NAME,
    SCHEMA_VERSION,
    TENSORS_NAME,
    load_gallery,
    save_gallery,
)
from faceshot_core.matching.gallery.two_pass import FirstPass, GalleryMatch, match_with_gallery

__all__ = [
    "DEFAULT_CROP_MARGIN",
    "FORMAT_NAME",
    "IMAGE_SUFFIXES",
    "JSON_NAME",
    "MIN_CROP_SIDE",
    "PART_ALIASES",
    "REFERENCE_CODE_SPEC",
    "SCHEMA_VERSION",
    "TENSORS_NAME",
    "FirstPass",
    "Gallery",
    "GalleryDomain",
    "GalleryError",
    "GalleryMatch",
    "GalleryMismatchError",
    "annotated_images",
    "build_gallery",
    "choose_domains",
    "domain_similarities",
    "import_reference_gallery",
    "load_gallery",
    "match_with_gallery",
    "part_box",
    "part_crops",
    "part_for_folder",
    "save_gallery",
]
