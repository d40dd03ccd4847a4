"""The appearance gallery (FaceShot Sec. 3.2, App. A): stored target features per part, domain.

Matching a cat against human target features goes wrong where the two look different (Fig. 4).
The gallery holds, for each of the five parts (:data:`~faceshot_core.schema.PARTS`) and each
*domain* (human, cat, anime, toy ...), the Eq. 4 average of the part's landmark features over the
domain's ``k`` annotated images, plus the mean image embedding (CLIP in the paper) of the part
crops.  For a reference image, each part picks the domain whose mean embedding is closest to
the reference's crop of that part, and Eq. 4 runs with the chosen domains' features.

On-disk format (schema version 1; full description in ``docs/gallery-format.md``)
--------------------------------------------------------------------------------
A folder with two files::

    gallery.json         format, schema_version, feature_spec (FeatureSpec.to_dict()), embedder,
                         embedding_dim, note, and parts -> {points: [indices],
                         domains -> {num_images, point_features: <tensor>, embedding: <tensor>}}
    gallery.safetensors  "<part>/<domain>/point_features" float32 [n_points, C]  (mean of the
                         normalised point features of the domain's images, not re-normalised)
                         "<part>/<domain>/embedding"      float32 [D]  (mean of the normalised
                         embeddings of the domain's part crops, not re-normalised)

safetensors holds only raw arrays, so loading a gallery can never run code (unlike the
reference code's pickled ``.pt`` files, which :func:`import_reference_gallery` reads with
``torch.load(weights_only=True)``).  A gallery records the :class:`FeatureSpec` it was built with
and the embedder's name, and refuses to serve another extractor or embedder
(:class:`GalleryMismatchError`): features of another model, timestep or block are not
comparable, and the argmax would be meaningless rather than merely worse.

Departures from the paper and the reference code
------------------------------------------------
* Eq. 3 asks for target features extracted with the *reference* as image prompt.  Stored
  features cannot depend on a reference that does not exist yet, so :func:`build_gallery`
  extracts target features without an image prompt - what the reference code's default (SD 2.1,
  no IP-Adapter) does too.
* The reference code crops the reference's parts with boxes asked from a 9.6B vision-language
  model.  :func:`match_with_gallery` instead matches twice: pass 1 with every part's features
  averaged over all domains (each domain weighted equally, so a large domain does not drown the
  others) or, with ``first_pass="best"``, with each domain separately keeping each landmark's
  best-scoring match; then it crops the parts around the pass-1 landmarks, chooses domains, and
  pass 2 matches with the chosen domains' features on the same reference feature map (one
  extraction).
* A part crop is the bounding box of the part's landmarks, squared and padded by ``margin``
  times its side on every side, then clipped to the image (so crops at the border may be
  rectangular; image embedders resize anyway).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faceshot_core.atomic import check_output_folder, current_umask
from faceshot_core.errors import FaceshotUserError, MediaError, MissingDependencyError
from faceshot_core.images import load_image
from faceshot_core.landmark_files import SUFFIXES as LANDMARK_SUFFIXES
from faceshot_core.landmark_files import load_face
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.matching.base import FeatureExtractor, FeatureSpec, ImageEmbedder
from faceshot_core.matching.matcher import (
    LandmarkMatch,
    Matcher,
    match_points,
    normalize_rows,
    point_features,
)
from faceshot_core.schema import NUM_POINTS, PARTS

FORMAT_NAME = "faceshot-gallery"
SCHEMA_VERSION = 1
JSON_NAME = "gallery.json"
TENSORS_NAME = "gallery.safetensors"

#: The reference code's default features: SD 2.1, DDIM inversion to t=301, ``unet.up_blocks[1]``
#: output (1280 channels), no IP-Adapter image prompt.  Galleries imported from its
#: ``target_domains`` folder were computed this way.
REFERENCE_CODE_SPEC = FeatureSpec(
    model="stabilityai/stable-diffusion-2-1",
    timestep=301,
    block="up_blocks.1",
    channels=1280,
    image_prompt=None,
)

#: Folder names accepted for each part when importing the reference code's ``target_domains``
#: (lower-cased, with ``-`` and spaces read as ``_``).  Its own names are the first of each list.
PART_ALIASES: dict[str, tuple[str, ...]] = {
    "eyes": ("eyes", "eye"),
    "mouth": ("mouth", "lips", "lip"),
    "nose": ("nose",),
    "eyebrows": ("eyebrows", "eyebrow", "brows", "brow"),
    "face_boundary": ("face_boundary", "faceboundary", "face", "boundary", "jaw", "contour"),
}

#: Padding of a part crop on each side, as a fraction of the part's (squared) box side.
DEFAULT_CROP_MARGIN = 0.25
#: Smallest crop side in pixels (a two-pixel eye box says nothing to an embedder).
MIN_CROP_SIDE = 16
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

Progress = Callable[[int, int | None], None]
_DOMAIN_NAME = re.compile(r"^[^/\\\x00-\x1f.][^/\\\x00-\x1f]*$")


class GalleryError(FaceshotUserError):
    """A gallery folder or ``target_domains`` tree that is missing, malformed or unreadable."""


class GalleryMismatchError(GalleryError):
    """A gallery built with another feature extractor or embedder than the one in use."""


# ---------------------------------------------------------------------------------------------
# In-memory gallery


@dataclass(frozen=True)
class GalleryDomain:
    """One domain of one part: Eq. 4's averaged point features and the mean crop embedding.

    ``num_images`` is ``k``, or None when unknown (galleries imported from the reference code).
    """

    point_features: np.ndarray
    embedding: np.ndarray
    num_images: int | None = None

    def __post_init__(self) -> None:
        for name in ("point_features", "embedding"):
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


@dataclass(frozen=True)
class Gallery:
    """Per part, per domain: stored target features (see the module docstring).

    Construction validates everything a file could get wrong (parts, shapes, finiteness), so a
    :class:`Gallery` in hand is always usable.
    """

    spec: FeatureSpec
    embedder: str
    parts: Mapping[str, Mapping[str, GalleryDomain]]
    note: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _validate_parts(self.parts, self.spec.channels, source="gallery")

    @property
    def embedding_dim(self) -> int:
        first = next(iter(next(iter(self.parts.values())).values()))
        return int(first.embedding.shape[0])

    def domains(self, part: str) -> tuple[str, ...]:
        """The domain names of ``part``, in stored order."""
        return tuple(self.parts[part])

    def check_compatible(
        self, spec: FeatureSpec | None = None, embedder_name: str | None = None
    ) -> None:
        """Raise :class:`GalleryMismatchError` naming both sides if ``spec`` or embedder differ."""
        if spec is not None and not spec.compatible_with(self.spec):
            raise GalleryMismatchError(
                f"the gallery was built with features {_describe(self.spec)}, but the extractor "
                f"produces {_describe(spec)}; rebuild the gallery with this extractor or use "
                "the extractor it was built with"
            )
        if embedder_name is not None and embedder_name != self.embedder:
            raise GalleryMismatchError(
                f"the gallery's embeddings come from {self.embedder!r}, but the embedder in use "
                f"is {embedder_name!r}; their embeddings cannot be compared"
            )

    def part_vectors(self, part: str, domain: str | None = None) -> np.ndarray:
        """Normalised ``[n_points, C]`` target vectors of ``part`` from one domain, or from all.

        ``domain=None`` averages the domains' normalised vectors with equal weights (pass 1 of
        :func:`match_with_gallery`), then re-normalises.
        """
        domains = self.parts[part]
        if domain is not None:
            if domain not in domains:
                raise GalleryError(
                    f"part {part!r} has no domain {domain!r} (it has {', '.join(domains)})"
                )
            return normalize_rows(domains[domain].point_features)
        stacked = np.stack([normalize_rows(d.point_features) for d in domains.values()])
        return normalize_rows(stacked.astype(np.float64).mean(axis=0))

    def target_vectors(self, choice: Mapping[str, str] | None = None) -> np.ndarray:
        """``[68, C]`` target vectors: each part from its chosen domain (or from all domains)."""
        out = np.zeros((NUM_POINTS, self.spec.channels), dtype=np.float32)
        for part, indices in PARTS.items():
            domain = None if choice is None else choice[part]
            out[list(indices)] = self.part_vectors(part, domain)
        return out

    def save(self, output: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write the gallery folder atomically (see :func:`save_gallery`)."""
        return save_gallery(self, output, overwrite=overwrite)


def _describe(spec: FeatureSpec) -> str:
    prompt = spec.image_prompt or "no image prompt"
    return (
        f"[model {spec.model}, timestep {spec.timestep}, block {spec.block}, "
        f"{spec.channels} channels, {prompt}]"
    )


def _check_part_names(names: Sequence[str], source: str) -> None:
    missing = [p for p in PARTS if p not in names]
    unknown = [p for p in names if p not in PARTS]
    if missing or unknown:
        problems = [f"missing part(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown part(s) {', '.join(unknown)}"] if unknown else []
        raise GalleryError(f"{source}: {'; '.join(problems)} (the parts are {', '.join(PARTS)})")


def _validate_parts(
    parts: Mapping[str, Mapping[str, GalleryDomain]], channels: int, source: str
) -> None:
    """Every part present with >= 1 domain, shapes [n_points, C] and [D] (one D), finite."""
    _check_part_names(list(parts), source)
    dims = set()
    for part, domains in parts.items():
        if not domains:
            raise GalleryError(f"{source}: part {part!r} has no domains")
        n_points = len(PARTS[part])
        for name, dom in domains.items():
            where = f"{source}: {part}/{name}"
            if not _DOMAIN_NAME.match(name):
                raise GalleryError(f"{where}: invalid domain name {name!r}")
            _check_array(dom.point_features, (n_points, channels), f"{where} point features")
            _check_array(dom.embedding, (None,), f"{where} embedding")
            dims.add(dom.embedding.shape[0])
            if dom.num_images is not None and dom.num_images < 1:
                raise GalleryError(f"{where}: num_images must be >= 1, got {dom.num_images}")
    if len(dims) != 1:
        raise GalleryError(f"{source}: embeddings of different sizes {sorted(dims)}")


def _check_array(arr: np.ndarray, shape: tuple[int | None, ...], what: str) -> None:
    ok = arr.ndim == len(shape) and all(
        s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
    )
    if not ok or arr.size == 0:
        want = "[" + ", ".join("D" if s is None else str(s) for s in shape) + "]"
        raise GalleryError(f"{what}: expected shape {want}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise GalleryError(f"{what}: contains NaN or infinite values")


# ---------------------------------------------------------------------------------------------
# gallery.json schema


class _DomainEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_images: int | None = Field(default=None, ge=1)
    point_features: str
    embedding: str


class _PartEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: list[int]
    domains: dict[str, _DomainEntry] = Field(min_length=1)


class _SpecEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    timestep: int
    block: str
    channels: int = Field(gt=0)
    image_prompt: str | None = None


class _GalleryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    schema_version: int
    feature_spec: _SpecEntry
    embedder: str
    embedding_dim: int = Field(gt=0)
    parts: dict[str, _PartEntry]
    note: str | None = None


def _tensor_names(part: str, domain: str) -> tuple[str, str]:
    return f"{part}/{domain}/point_features", f"{part}/{domain}/embedding"


def _manifest(gallery: Gallery) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for part, domains in gallery.parts.items():
        entries = {}
        for name, dom in domains.items():
            feats, emb = _tensor_names(part, name)
            entries[name] = {
                "num_images": dom.num_images,
                "point_features": feats,
                "embedding": emb,
            }
        parts[part] = {"points": list(PARTS[part]), "domains": entries}
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "feature_spec": gallery.spec.to_dict(),
        "embedder": gallery.embedder,
        "embedding_dim": gallery.embedding_dim,
        "note": gallery.note,
        "parts": parts,
    }


# ---------------------------------------------------------------------------------------------
# Saving and loading


def _safetensors_numpy() -> Any:
    try:
        from safetensors import numpy as st_numpy
    except ImportError:  # pragma: no cover - exercised only without safetensors installed
        raise MissingDependencyError(
            "reading and writing appearance galleries needs the 'safetensors' package "
            "(pip install safetensors)"
        ) from None
    return st_numpy


def save_gallery(
    gallery: Gallery, output: str | os.PathLike[str], *, overwrite: bool = True
) -> Path:
    """Write ``gallery`` as the folder ``output`` (``gallery.json`` + ``gallery.safetensors``).

    Both files are written into a hidden temporary folder beside ``output``, which then takes
    ``output``'s place, so a failure never leaves a half-written gallery.  An existing gallery
    folder is replaced when ``overwrite``; any other existing folder or file is refused (a typo
    must not wipe a folder of photos).
    """
    st_numpy = _safetensors_numpy()
    out = Path(output)
    _check_gallery_output(out, overwrite)
    tensors: dict[str, np.ndarray] = {}
    for part, domains in gallery.parts.items():
        for name, dom in domains.items():
            feats, emb = _tensor_names(part, name)
            tensors[feats] = np.ascontiguousarray(dom.point_features, dtype=np.float32)
            tensors[emb] = np.ascontiguousarray(dom.embedding, dtype=np.float32)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        st_numpy.save_file(tensors, str(tmp / TENSORS_NAME), metadata={"format": FORMAT_NAME})
        text = json.dumps(_manifest(gallery), indent=2)
        (tmp / JSON_NAME).write_text(text + "\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~current_umask())
        _swap_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_gallery_output(out: Path, overwrite: bool) -> None:
    check_output_folder(out)
    if out.is_file() or out.is_symlink():
        raise MediaError(f"gallery output {out} is a file; give a folder path")
    if out.is_dir():
        if not overwrite:
            raise MediaError(f"gallery output {out} already exists")
        if any(out.iterdir()) and not (out / JSON_NAME).is_file():
            raise MediaError(
                f"gallery output {out} is a non-empty folder that is not a gallery; "
                "refusing to replace it"
            )


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an old gallery there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_gallery(
    path: str | os.PathLike[str],
    *,
    spec: FeatureSpec | None = None,
    embedder_name: str | None = None,
) -> Gallery:
    """Read a gallery folder (or its ``gallery.json``); check it against ``spec``/embedder.

    Raises :class:`GalleryError` for a missing or malformed gallery and
    :class:`GalleryMismatchError` when ``spec`` or ``embedder_name`` is given and differs.
    """
    folder = Path(path)
    if folder.name == JSON_NAME and folder.is_file():
        folder = folder.parent
    manifest = _read_manifest(folder)
    tensors = _read_tensors(folder / TENSORS_NAME)
    gallery = _assemble(folder, manifest, tensors)
    gallery.check_compatible(spec, embedder_name)
    return gallery


def _read_manifest(folder: Path) -> _GalleryFile:
    json_path = folder / JSON_NAME
    if not folder.is_dir():
        raise GalleryError(f"gallery {folder} does not exist or is not a folder")
    if not json_path.is_file():
        raise GalleryError(f"{folder} is not a gallery folder (no {JSON_NAME})")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise GalleryError(f"{json_path}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise GalleryError(f"{json_path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        found = data.get("format") if isinstance(data, dict) else None
        raise GalleryError(f"{json_path}: not a faceshot gallery (format {found!r})")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise GalleryError(
            f"{json_path}: unknown schema version {version!r} (this faceshot reads version "
            f"{SCHEMA_VERSION}); a newer faceshot may be needed"
        )
    try:
        return _GalleryFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise GalleryError(f"{json_path}: {loc}: {first['msg']}") from None


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    st_numpy = _safetensors_numpy()
    if not path.is_file():
        raise GalleryError(f"gallery tensors {path} are missing")
    try:
        return dict(st_numpy.load_file(str(path)))
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise GalleryError(f"{path}: not a readable safetensors file ({exc})") from None


def _assemble(folder: Path, manifest: _GalleryFile, tensors: dict[str, np.ndarray]) -> Gallery:
    source = str(folder)
    _check_part_names(list(manifest.parts), source)
    used: set[str] = set()
    parts: dict[str, dict[str, GalleryDomain]] = {}
    for part, entry in manifest.parts.items():
        if entry.points != list(PARTS[part]):
            raise GalleryError(
                f"{source}: part {part!r} lists points {entry.points}, expected "
                f"{PARTS[part][0]}..{PARTS[part][-1]}"
            )
        domains = {}
        for name, dom in entry.domains.items():
            arrays = []
            for key in (dom.point_features, dom.embedding):
                if key not in tensors:
                    raise GalleryError(f"{source}: tensor {key!r} ({part}/{name}) is missing")
                used.add(key)
                if not np.issubdtype(tensors[key].dtype, np.floating):
                    raise GalleryError(
                        f"{source}: tensor {key!r} is {tensors[key].dtype}, not float"
                    )
                arrays.append(tensors[key])
            domains[name] = GalleryDomain(arrays[0], arrays[1], dom.num_images)
        parts[part] = domains
    extra = sorted(set(tensors) - used)
    if extra:
        raise GalleryError(f"{source}: unexpected tensors {', '.join(extra[:5])}")
    spec = FeatureSpec.from_dict(manifest.feature_spec.model_dump())
    gallery = Gallery(spec, manifest.embedder, parts, note=manifest.note)
    if gallery.embedding_dim != manifest.embedding_dim:
        raise GalleryError(
            f"{source}: embeddings have {gallery.embedding_dim} values, gallery.json says "
            f"{manifest.embedding_dim}"
        )
    return gallery


# ---------------------------------------------------------------------------------------------
# Part crops and domain choice


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


def _embed_parts(
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
    emb = _embed_parts(embedder, image, points, margin)
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


# ---------------------------------------------------------------------------------------------
# Building from annotated images


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
        if not _DOMAIN_NAME.match(folder.name):
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
    progress: Progress | None = None,
    margin: float = DEFAULT_CROP_MARGIN,
    note: str | None = None,
    overwrite: bool = True,
) -> Gallery:
    """Build a gallery from ``root/<domain>/`` folders of annotated images and write it.

    Each image needs a 68-point landmark file with the same stem (faceshot JSON, ``.npz``,
    ``.npy``, ``.pts`` or ``.txt``).  Per domain and part: the Eq. 4 average of the images'
    normalised point features (extracted without an image prompt, see the module docstring)
    and the mean normalised embedding of the part crops.  Every domain serves every part.
    ``progress(done, total)`` is called after each image.
    """
    root_path = Path(root)
    plan = [(folder.name, annotated_images(folder)) for folder in _domain_folders(root_path)]
    _check_gallery_output(Path(output), overwrite)  # fail before the long part
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
            if progress is not None:
                progress(done, total)
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
    embeddings = _embed_parts(embedder, image, landmarks.points, margin).astype(np.float64)
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


# ---------------------------------------------------------------------------------------------
# Import of the reference code's target_domains


def part_for_folder(name: str) -> str | None:
    """Our part name for a ``target_domains`` folder name, via :data:`PART_ALIASES`."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    for part, aliases in PART_ALIASES.items():
        if key in aliases:
            return part
    return None


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            "importing the reference code's target_domains (.pt files) needs torch "
            "(pip install torch)"
        ) from None
    return torch


def _load_pt(torch: Any, path: Path) -> np.ndarray:
    """A tensor from a ``.pt`` file, refusing anything but plain tensors (no code runs)."""
    if not path.is_file():
        raise GalleryError(f"{path} is missing")
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError for code, RuntimeError/EOFError for garbage
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GalleryError(
            f"{path}: refused - not a plain tensor file (loading with weights_only=True "
            f"failed: {reason[:200]})"
        ) from None
    if isinstance(obj, Mapping | Sequence) and not isinstance(obj, str | bytes):
        values = list(obj.values()) if isinstance(obj, Mapping) else list(obj)
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        obj = tensors[0] if len(tensors) == 1 and len(values) == 1 else obj
    if not isinstance(obj, torch.Tensor):
        raise GalleryError(f"{path}: expected one tensor, found {type(obj).__name__}")
    if not obj.is_floating_point():
        raise GalleryError(f"{path}: expected floating-point values, found {obj.dtype}")
    return np.ascontiguousarray(obj.detach().to(torch.float32).numpy())


def _reference_part_folders(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise GalleryError(f"target_domains folder {root} does not exist or is not a folder")
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith((".", "_")):
            continue
        part = part_for_folder(child.name)
        if part is None:
            raise GalleryError(
                f"{child}: unknown part folder {child.name!r}; expected one of "
                + "; ".join(f"{p}: {'/'.join(a)}" for p, a in PART_ALIASES.items())
            )
        if part in found:
            raise GalleryError(f"{root}: both {found[part].name} and {child.name} are {part}")
        found[part] = child
    missing = [p for p in PARTS if p not in found]
    if missing:
        raise GalleryError(
            f"{root}: no folder for part(s) "
            + ", ".join(f"{p} (looked for {'/'.join(PART_ALIASES[p])})" for p in missing)
        )
    return found


def _reference_domain(torch: Any, folder: Path, part: str, channels: int) -> GalleryDomain:
    diff = _load_pt(torch, folder / "diff_feature.pt")
    clip = _load_pt(torch, folder / "clip_feature.pt")
    while diff.ndim > 2 and diff.shape[0] == 1:
        diff = diff[0]
    n_points = len(PARTS[part])
    if diff.shape != (n_points, channels):
        raise GalleryError(
            f"{folder / 'diff_feature.pt'}: expected [{n_points}, {channels}] "
            f"({part} has {n_points} points), got {list(diff.shape)}"
        )
    if clip.ndim == 2 and clip.shape[0] == 1:
        clip = clip[0]
    if clip.ndim != 1:
        raise GalleryError(f"{folder / 'clip_feature.pt'}: expected [1, D], got {list(clip.shape)}")
    for arr, name in ((diff, "diff_feature.pt"), (clip, "clip_feature.pt")):
        if not np.isfinite(arr).all():
            raise GalleryError(f"{folder / name}: contains NaN or infinite values")
    return GalleryDomain(diff, clip, None)


def import_reference_gallery(
    target_domains_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    spec: FeatureSpec,
    embedder_name: str,
    overwrite: bool = True,
) -> Gallery:
    """Convert the reference code's ``target_domains/<part>/<domain>/`` tree to our format.

    Each domain folder holds ``diff_feature.pt`` (``[n_points, C]``) and ``clip_feature.pt``
    (``[1, D]``), read with ``torch.load(weights_only=True)`` so a pickle carrying code is
    refused.  Part folders may use any name of :data:`PART_ALIASES`.  ``spec`` is how the
    features were computed (:data:`REFERENCE_CODE_SPEC` for the reference code's defaults) and
    ``embedder_name`` the name of the embedder whose embeddings ``clip_feature.pt`` holds
    (CLIP ViT-H-14); both are recorded, since the files cannot say.
    """
    torch = _import_torch()
    root = Path(target_domains_dir)
    parts: dict[str, dict[str, GalleryDomain]] = {}
    for part, folder in _reference_part_folders(root).items():
        domain_dirs = sorted(
            p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not domain_dirs:
            raise GalleryError(f"{folder}: no domain folders")
        parts[part] = {
            d.name: _reference_domain(torch, d, part, spec.channels) for d in domain_dirs
        }
    gallery = Gallery(
        spec, embedder_name, {p: parts[p] for p in PARTS}, note=f"imported from {root}"
    )
    save_gallery(gallery, output, overwrite=overwrite)
    return gallery
