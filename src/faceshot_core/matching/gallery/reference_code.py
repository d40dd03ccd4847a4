"""Import of the reference code's ``target_domains`` tree (pickled ``.pt`` tensors).

The reference code stores ``target_domains/<part>/<domain>/diff_feature.pt`` and
``clip_feature.pt``.  They are read with ``torch.load(weights_only=True)``, so a pickle carrying
code is refused, checked, and written in faceshot's own format (:mod:`.store`).  The files do not
say how they were computed, so the caller names the :class:`FeatureSpec`
(:data:`REFERENCE_CODE_SPEC` for the reference code's defaults) and the embedder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceshot_core.matching.base import FeatureSpec
from faceshot_core.matching.gallery.model import Gallery, GalleryDomain, GalleryError
from faceshot_core.matching.gallery.store import save_gallery
from faceshot_core.schema import PARTS
from faceshot_core.torch_support import require_torch

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


def part_for_folder(name: str) -> str | None:
    """Our part name for a ``target_domains`` folder name, via :data:`PART_ALIASES`."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    for part, aliases in PART_ALIASES.items():
        if key in aliases:
            return part
    return None


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
    torch = require_torch("importing the reference code's target_domains (.pt files)")
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
