"""The gallery's on-disk format (schema version 1): writing and reading a gallery folder.

Full description in ``docs/gallery-format.md``.  A folder with two files::

    gallery.json         format, schema_version, feature_spec (FeatureSpec.to_dict()), embedder,
                         embedding_dim, note, and parts -> {points: [indices],
                         domains -> {num_images, point_features: <tensor>, embedding: <tensor>}}
    gallery.safetensors  "<part>/<domain>/point_features" float32 [n_points, C]  (mean of the
                         normalised point features of the domain's images, not re-normalised)
                         "<part>/<domain>/embedding"      float32 [D]  (mean of the normalised
                         embeddings of the domain's part crops, not re-normalised)

safetensors holds only raw arrays, so loading a gallery can never run code (unlike the
reference code's pickled ``.pt`` files, which
:func:`~faceshot_core.matching.gallery.import_reference_gallery` reads with
``torch.load(weights_only=True)``).  Writing is atomic: a failure never leaves a half-written
gallery, and only an existing gallery folder is ever replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faceshot_core.atomic import check_output_folder, current_umask
from faceshot_core.errors import MediaError, MissingDependencyError
from faceshot_core.matching.base import FeatureSpec
from faceshot_core.matching.gallery.model import (
    Gallery,
    GalleryDomain,
    GalleryError,
    check_part_names,
)
from faceshot_core.schema import PARTS

FORMAT_NAME = "faceshot-gallery"
SCHEMA_VERSION = 1
JSON_NAME = "gallery.json"
TENSORS_NAME = "gallery.safetensors"


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
    check_gallery_output(out, overwrite)
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


def check_gallery_output(out: Path, overwrite: bool) -> None:
    """Refuse a file, a folder that is not a gallery, or (without ``overwrite``) any folder.

    Builders call it before their long part, so a wrong output path fails in seconds.
    """
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
    check_part_names(list(manifest.parts), source)
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
