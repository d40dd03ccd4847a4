"""Which CLIP image encoder measures identity, found on this machine without any download.

Places, in order (the first one named wins; a named place is used alone, as for the matcher's
weights: falling back to another encoder behind the user's back would make figures that do not
compare):

1. ``clip=`` / ``--clip``: a folder or a Hugging Face id in the cache;
2. ``$FACESHOT_CLIP_IMAGE_ENCODER``: a folder;
3. the Hugging Face cache: IP-Adapter's ViT-H-14 encoder (``h94/IP-Adapter``,
   ``models/image_encoder``: the encoder the matcher already uses, fetched with
   ``faceshot weights pull ip-adapter``), else ``openai/clip-vit-large-patch14``.

A folder may be the encoder itself (``config.json`` and ``model.safetensors`` or
``pytorch_model.bin``, plain or ``fp16``), or hold it in ``image_encoder/`` or
``models/image_encoder/`` (IP-Adapter's layout).  A full CLIP model (``CLIPModel``, vision and
text) is read as its vision tower and projection.

Nothing found is not an error: identity is then reported as not measured, with
:attr:`EncoderSearch.reason` saying where faceshot looked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceshot_core.matching.weights import IP_ADAPTER_REPO
from faceshot_core.weights import WeightFile, WeightSpec, find_weights, hf_hub_cache

__all__ = [
    "CLIP_ENV",
    "DEFAULT_ENCODERS",
    "EncoderSearch",
    "find_encoder",
    "load_vision_model",
]

CLIP_ENV = "FACESHOT_CLIP_IMAGE_ENCODER"
#: Hugging Face ids (with the encoder's subfolder) tried in the cache when nothing is named.
DEFAULT_ENCODERS: tuple[tuple[str, str], ...] = (
    (IP_ADAPTER_REPO, "models/image_encoder"),
    ("openai/clip-vit-large-patch14", ""),
)
_LAYOUTS = ("", "image_encoder", "models/image_encoder")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHTS = WeightFile(
    path="model.safetensors",
    alternatives=("pytorch_model.bin", "model.fp16.safetensors", "pytorch_model.fp16.bin"),
    description="CLIP image encoder weights",
)
_CONFIG = WeightFile(path="config.json", description="CLIP image encoder config")


@dataclass(frozen=True)
class EncoderSearch:
    """Where the encoder is (``folder``) and its short name, or why none was found."""

    folder: Path | None
    name: str = ""
    reason: str = ""


def _spec(repo_id: str | None = None, subfolder: str = "") -> WeightSpec:
    return WeightSpec(name="clip-image-encoder", repo_id=repo_id, subfolder=subfolder,
                      files=(_CONFIG, _WEIGHTS))  # fmt: skip


def _in_folder(folder: Path) -> Path | None:
    for layout in _LAYOUTS:
        location = find_weights(_spec(), folder / layout)
        if location.ready and location.root is not None:
            return location.root
    return None


def _in_cache(repo_id: str, layouts: tuple[str, ...], cache_dir: Any) -> Path | None:
    for layout in layouts:
        location = find_weights(_spec(repo_id, layout), cache_dir=cache_dir)
        if location.ready and location.root is not None:
            return location.root
    return None


def find_encoder(
    clip: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> EncoderSearch:
    """Look for a CLIP image encoder in the places of the module docstring; never raises."""
    files = "config.json with model.safetensors or pytorch_model.bin"
    if clip is not None:
        text = os.fspath(clip)
        local = Path(text).expanduser()
        if local.exists() or not _HUB_ID.match(text):
            found = _in_folder(local)
            why = f"--clip {text}: no CLIP image encoder there ({files}, or its image_encoder/)"
            return EncoderSearch(found, local.name) if found else EncoderSearch(None, reason=why)
        found = _in_cache(text, _LAYOUTS, cache_dir)
        why = f"--clip {text}: not in the Hugging Face cache {hf_hub_cache(cache_dir)}"
        return EncoderSearch(found, text) if found else EncoderSearch(None, reason=why)
    env = os.environ.get(CLIP_ENV)
    if env:
        found = _in_folder(Path(env).expanduser())
        why = f"${CLIP_ENV} = {env}: no CLIP image encoder there ({files})"
        return EncoderSearch(found, Path(env).name) if found else EncoderSearch(None, reason=why)
    for repo_id, layout in DEFAULT_ENCODERS:
        found = _in_cache(repo_id, (layout,), cache_dir)
        if found is not None:
            return EncoderSearch(found, repo_id)
    names = " or ".join(repo for repo, _ in DEFAULT_ENCODERS)
    return EncoderSearch(
        None,
        reason=f"no CLIP image encoder found (give --clip DIR, set ${CLIP_ENV}, or have {names} "
        f"in the Hugging Face cache: faceshot weights pull ip-adapter)",
    )


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """No load report or progress bar from transformers (a full CLIP's unused text tower)."""
    logging = transformers.utils.logging
    before = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(before)
        if bars:
            logging.enable_progress_bar()


def load_vision_model(folder: Path) -> Any:
    """``CLIPVisionModelWithProjection`` from a complete folder, offline.

    A full CLIP model's config puts the projection size at the top level, while its
    ``vision_config`` keeps the class default: the vision config is built with the real one.
    """
    import transformers

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    kwargs: dict[str, Any] = {"local_files_only": True}
    if config.get("model_type") == "clip":
        vision = dict(config.get("vision_config") or {})
        vision["projection_dim"] = config.get("projection_dim", vision.get("projection_dim"))
        vision.pop("model_type", None)
        kwargs["config"] = transformers.CLIPVisionConfig(**vision)
    if not any(folder.glob("model.safetensors")) and not any(folder.glob("pytorch_model.bin")):
        kwargs["variant"] = "fp16"
    with _quiet_transformers(transformers):
        return transformers.CLIPVisionModelWithProjection.from_pretrained(folder, **kwargs)
