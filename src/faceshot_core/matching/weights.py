"""Find the matcher's model weights on this machine, never downloading anything.

A model argument is either a local folder or a Hugging Face Hub id.  Hub ids are resolved from
the Hugging Face cache only (``local_files_only``), so a machine without network uses exactly
what was put there beforehand: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub`` (read at call time, so a changed environment is honoured).

Every file a run needs is checked *before* anything is loaded, and everything that is missing
is reported in one :class:`~faceshot_core.errors.MissingDependencyError`: the files, every place
searched, and the commands that fetch them.  Loading a 4 GB UNet only to learn that the text
encoder is missing, then fixing that only to learn about the tokenizer, is the failure this
module exists to prevent.

Expected layouts (those of the released repositories):

* Stable Diffusion (``stable-diffusion-v1-5/stable-diffusion-v1-5``,
  ``stabilityai/stable-diffusion-2-1``), the diffusers layout: ``unet/``, ``vae/``,
  ``text_encoder/`` (``config.json`` and ``*.safetensors`` or ``*.bin``, optionally the
  ``fp16`` variant), ``tokenizer/`` (``vocab.json`` and ``merges.txt``, or ``tokenizer.json``)
  and ``scheduler/scheduler_config.json``.
* IP-Adapter (``h94/IP-Adapter``): ``models/ip-adapter_sd15.bin`` (or ``.safetensors``) and the
  CLIP ViT-H-14 image encoder in ``models/image_encoder/`` (``config.json`` and weights).  A
  local folder may also be that ``models`` folder itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceshot_core.errors import MissingDependencyError

__all__ = [
    "IP_ADAPTER_REPO",
    "SD15_REPO",
    "SD21_REPO",
    "Requirement",
    "ResolvedSource",
    "WeightPaths",
    "hf_hub_cache",
    "locate_image_encoder",
    "locate_weights",
]

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD21_REPO = "stabilityai/stable-diffusion-2-1"
IP_ADAPTER_REPO = "h94/IP-Adapter"
IP_ADAPTER_FILE = "ip-adapter_sd15"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Requirement:
    """One needed file: any of ``alternatives`` (paths relative to the source root) will do.

    The first alternative is the preferred one; it is the one the download hint names.
    """

    key: str
    alternatives: tuple[str, ...]

    def describe(self) -> str:
        first, *rest = self.alternatives
        return f"{first} (or {', '.join(rest)})" if rest else first


def _weight_files(
    folder: str, stem: str, bin_stem: str | None = None, *, key: str | None = None
) -> Requirement:
    """Weights of one component: safetensors or pickle, plain or ``fp16`` variant."""
    b = bin_stem or stem
    d = f"{folder}/" if folder else ""
    names = (f"{stem}.safetensors", f"{b}.bin", f"{stem}.fp16.safetensors", f"{b}.fp16.bin")
    return Requirement(f"{key or folder}:weights", tuple(d + n for n in names))


def diffusion_requirements(*, text_encoder: bool = True) -> tuple[Requirement, ...]:
    """Files of a Stable Diffusion checkpoint in the diffusers layout that feature extraction reads.

    The safety checker, feature extractor and ``model_index.json`` are not needed: the UNet,
    the VAE encoder, the text encoder with its tokenizer and the scheduler's config are.
    """
    reqs = [
        Requirement("unet:config", ("unet/config.json",)),
        _weight_files("unet", "diffusion_pytorch_model"),
        Requirement("vae:config", ("vae/config.json",)),
        _weight_files("vae", "diffusion_pytorch_model"),
        Requirement("scheduler:config", ("scheduler/scheduler_config.json",)),
    ]
    if text_encoder:
        reqs += [
            Requirement("text_encoder:config", ("text_encoder/config.json",)),
            _weight_files("text_encoder", "model", "pytorch_model"),
            # The released repos ship vocab.json + merges.txt; tokenizer.json alone also does.
            Requirement("tokenizer:vocab", ("tokenizer/vocab.json", "tokenizer/tokenizer.json")),
            Requirement("tokenizer:merges", ("tokenizer/merges.txt", "tokenizer/tokenizer.json")),
        ]
    return tuple(reqs)


def image_encoder_requirements(prefix: str) -> tuple[Requirement, ...]:
    """The CLIP vision tower with projection (transformers layout) under ``prefix``."""
    folder = f"{prefix}image_encoder"
    return (
        Requirement("image_encoder:config", (f"{folder}/config.json",)),
        _weight_files(folder, "model", "pytorch_model", key="image_encoder"),
    )


def ip_adapter_requirements(prefix: str, name: str = IP_ADAPTER_FILE) -> tuple[Requirement, ...]:
    """The IP-Adapter state dict and its image encoder under ``prefix`` ("models/" or "")."""
    adapter = Requirement(
        "ip_adapter:weights", (f"{prefix}{name}.bin", f"{prefix}{name}.safetensors")
    )
    return (adapter, *image_encoder_requirements(prefix))


@dataclass(frozen=True)
class ResolvedSource:
    """A model argument resolved to a folder, with the files found and those missing."""

    source: str  # the argument as given
    kind: str  # "local folder" or "Hugging Face cache"
    root: Path | None  # the folder holding the files (None: nothing found)
    found: dict[str, Path] = field(default_factory=dict)  # requirement key -> file
    missing: tuple[Requirement, ...] = ()
    searched: tuple[str, ...] = ()  # human-readable places looked at
    is_hub_id: bool = False

    def file(self, key: str) -> Path:
        """The file found for requirement ``key`` (KeyError if it was not required/found)."""
        return self.found[key]

    def variant(self, component: str) -> str | None:
        """``"fp16"`` when only a component's fp16 variant is present, else None.

        diffusers and transformers pick ``<name>.fp16.safetensors`` only when told this variant.
        """
        path = self.found.get(f"{component}:weights")
        return "fp16" if path is not None and ".fp16." in path.name else None

    @property
    def name(self) -> str:
        """A short, stable identifier: the Hub id, or the folder's name."""
        if self.is_hub_id or self.root is None:
            return self.source
        return Path(self.source).expanduser().resolve().name


@dataclass(frozen=True)
class WeightPaths:
    """Where a feature extractor's weights are: the diffusion model, and the IP-Adapter if any."""

    model: ResolvedSource
    ip_adapter: ResolvedSource | None = None
    ip_adapter_prefix: str = "models/"

    @property
    def image_encoder_dir(self) -> Path | None:
        if self.ip_adapter is None:
            return None
        return self.ip_adapter.file("image_encoder:config").parent


def hf_hub_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Hugging Face Hub cache folder, from the environment as it is *now*.

    ``huggingface_hub.constants`` reads these variables once, at import; reading them here
    keeps a ``HF_HOME`` set later in the process (or by a test) effective.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _hub_snapshot(repo_id: str, cache: Path, revision: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` (offline; None when there is none)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with diffusers
        raise MissingDependencyError(
            "huggingface_hub is needed to read the Hugging Face cache; "
            "install the matcher's extra: pip install 'faceshot[match]'"
        ) from exc
    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache, revision=revision, local_files_only=True
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    return Path(str(folder))


def _check_files(
    root: Path, requirements: Iterable[Requirement]
) -> tuple[dict[str, Path], tuple[Requirement, ...]]:
    found: dict[str, Path] = {}
    missing: list[Requirement] = []
    for req in requirements:
        # is_file() follows symlinks: a cache entry whose blob is gone counts as missing.
        hit = next((root / alt for alt in req.alternatives if (root / alt).is_file()), None)
        if hit is None:
            missing.append(req)
        else:
            found[req.key] = hit
    return found, tuple(missing)


def _resolve(
    source: str | os.PathLike[str],
    requirements: Sequence[Requirement],
    *,
    cache_dir: str | os.PathLike[str] | None,
    revision: str | None,
) -> ResolvedSource:
    """Look for ``requirements`` in a local folder, or in the Hub cache for a Hub id."""
    text = os.fspath(source)
    local = Path(text).expanduser()
    if local.is_dir():
        found, missing = _check_files(local, requirements)
        return ResolvedSource(
            text, "local folder", local, found, missing, (f"local folder {local.resolve()}",)
        )
    searched = [f"local folder {local.resolve()} (does not exist)"]
    if local.exists():
        searched = [f"{local.resolve()} (a file, expected a folder)"]
    if not _HUB_ID.match(text):
        return ResolvedSource(text, "local folder", None, {}, tuple(requirements), tuple(searched))
    cache = hf_hub_cache(cache_dir)
    snapshot = _hub_snapshot(text, cache, revision)
    if snapshot is None:
        searched.append(f"Hugging Face cache {cache} (no snapshot of {text})")
        return ResolvedSource(
            text,
            "Hugging Face cache",
            None,
            {},
            tuple(requirements),
            tuple(searched),
            is_hub_id=True,
        )
    found, missing = _check_files(snapshot, requirements)
    searched.append(f"Hugging Face cache {cache} (snapshot {snapshot})")
    return ResolvedSource(
        text, "Hugging Face cache", snapshot, found, missing, tuple(searched), is_hub_id=True
    )


def _ip_adapter_prefix(source: str | os.PathLike[str]) -> str:
    """``"models/"`` (the repository layout) unless ``source`` is the ``models`` folder itself."""
    local = Path(os.fspath(source)).expanduser()
    is_models_folder = (local / "image_encoder").is_dir() or any(local.glob(f"{IP_ADAPTER_FILE}.*"))
    if local.is_dir() and not (local / "models").is_dir() and is_models_folder:
        return ""
    return "models/"


def _download_hint(resolved: ResolvedSource, flag: str) -> str:
    files = " ".join(req.alternatives[0] for req in resolved.missing)
    repo = resolved.source if resolved.is_hub_id else "<hub id>"
    return (
        f"  on a machine with network: hf download {repo} {files}\n"
        f"    (older huggingface_hub: huggingface-cli download ...), then copy its Hugging Face "
        f"cache here or point HF_HOME at it;\n"
        f"  or pass a folder that has these files with {flag} PATH"
    )


def _raise_missing(parts: Sequence[tuple[str, str, ResolvedSource]]) -> None:
    """One error for everything missing, across all sources."""
    incomplete = [(what, flag, r) for what, flag, r in parts if r.missing]
    if not incomplete:
        return
    lines = ["model weights are missing (nothing is downloaded; see below how to provide them)"]
    for what, flag, r in incomplete:
        lines.append(f"{what} {r.source!r}: missing")
        lines += [f"  - {req.describe()}" for req in r.missing]
        lines.append("  searched:")
        lines += [f"  - {place}" for place in r.searched]
        lines.append("  to provide them:")
        lines.append(_download_hint(r, flag))
    lines.append("install the matcher's packages with: pip install 'faceshot[match]'")
    raise MissingDependencyError("\n".join(lines))


def locate_weights(
    model: str | os.PathLike[str] = SD15_REPO,
    *,
    ip_adapter: str | os.PathLike[str] | None = None,
    ip_adapter_name: str = IP_ADAPTER_FILE,
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
) -> WeightPaths:
    """Check that every file feature extraction needs is present; return where each one is.

    ``model`` and ``ip_adapter`` are local folders or Hub ids (resolved from the cache only).
    Raises one :class:`MissingDependencyError` naming all missing files of both, every place
    searched, and how to provide them.
    """
    resolved = _resolve(model, diffusion_requirements(), cache_dir=cache_dir, revision=revision)
    parts = [("Stable Diffusion model", "--model", resolved)]
    adapter: ResolvedSource | None = None
    prefix = "models/"
    if ip_adapter is not None:
        prefix = _ip_adapter_prefix(ip_adapter)
        adapter = _resolve(
            ip_adapter,
            ip_adapter_requirements(prefix, ip_adapter_name),
            cache_dir=cache_dir,
            revision=None,
        )
        parts.append(("IP-Adapter", "--ip-adapter", adapter))
    _raise_missing(parts)
    return WeightPaths(resolved, adapter, prefix)


def locate_image_encoder(
    source: str | os.PathLike[str] = IP_ADAPTER_REPO,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
) -> Path:
    """The folder of the CLIP image encoder: ``source`` itself, or its ``[models/]image_encoder``.

    Accepts the IP-Adapter repository (folder or Hub id), its ``models`` folder, or the
    encoder's own folder (one holding ``config.json``).
    """
    local = Path(os.fspath(source)).expanduser()
    reqs: tuple[Requirement, ...]
    if local.is_dir() and (local / "config.json").is_file():
        reqs = (
            Requirement("image_encoder:config", ("config.json",)),
            _weight_files("", "model", "pytorch_model", key="image_encoder"),
        )
        prefix = ""
    else:
        prefix = _ip_adapter_prefix(source)
        reqs = image_encoder_requirements(prefix)
    resolved = _resolve(source, reqs, cache_dir=cache_dir, revision=revision)
    _raise_missing([("CLIP image encoder", "--image-encoder", resolved)])
    return resolved.file("image_encoder:config").parent
