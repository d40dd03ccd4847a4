"""The matcher's weights: its components as :class:`WeightSpec`s, and where they are here.

A model argument is either a local folder or a Hugging Face Hub id.  The search itself (the
folder, the Hugging Face cache as it is *now*, never the network) lives in
:mod:`faceshot_core.weights`, shared with every backend; this module says which files the
matcher reads and turns what is missing into one error.

Every file a run needs is checked *before* anything is loaded, and everything that is missing
is reported in one :class:`~faceshot_core.errors.MissingDependencyError`: the files, every place
searched, and how to get them.  Loading a 4 GB UNet only to learn that the text encoder is
missing, then fixing that only to learn about the tokenizer, is the failure this prevents.

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

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faceshot_core.errors import MissingDependencyError
from faceshot_core.weights import WeightFile, WeightLocation, WeightSpec, find_weights, hf_hub_cache

__all__ = [
    "IP_ADAPTER_REPO",
    "IP_ADAPTER_SPEC",
    "MATCHER_WEIGHTS",
    "SD15_REPO",
    "SD15_SPEC",
    "SD21_REPO",
    "SD21_SPEC",
    "ResolvedSource",
    "WeightPaths",
    "diffusion_spec",
    "hf_hub_cache",
    "ip_adapter_spec",
    "locate_image_encoder",
    "locate_weights",
]

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD21_REPO = "stabilityai/stable-diffusion-2-1"
IP_ADAPTER_REPO = "h94/IP-Adapter"
IP_ADAPTER_FILE = "ip-adapter_sd15"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _weights(folder: str, stem: str, bin_stem: str | None = None, what: str = "") -> WeightFile:
    """Weights of one component: safetensors or pickle, plain or ``fp16`` variant."""
    b = bin_stem or stem
    d = f"{folder}/" if folder else ""
    names = (f"{stem}.safetensors", f"{b}.bin", f"{stem}.fp16.safetensors", f"{b}.fp16.bin")
    return WeightFile(path=d + names[0], alternatives=tuple(d + n for n in names[1:]),
                      description=what)  # fmt: skip


def _config(path: str, what: str) -> WeightFile:
    return WeightFile(path=path, description=what)


# Requirement key (what the loading code asks for) -> the file; keys stay stable for callers.
_TEXT_KEYS = {
    "text_encoder:config": _config("text_encoder/config.json", "CLIP text encoder config"),
    "text_encoder:weights": _weights("text_encoder", "model", "pytorch_model", "text encoder"),
    # The released repos ship vocab.json + merges.txt; tokenizer.json alone also does.
    "tokenizer:vocab": WeightFile(
        path="tokenizer/vocab.json", alternatives=("tokenizer/tokenizer.json",)
    ),
    "tokenizer:merges": WeightFile(
        path="tokenizer/merges.txt", alternatives=("tokenizer/tokenizer.json",)
    ),
}
_DIFFUSION_KEYS = {
    "unet:config": _config("unet/config.json", "UNet config"),
    "unet:weights": _weights("unet", "diffusion_pytorch_model", what="UNet"),
    "vae:config": _config("vae/config.json", "VAE config"),
    "vae:weights": _weights("vae", "diffusion_pytorch_model", what="VAE"),
    "scheduler:config": _config("scheduler/scheduler_config.json", "scheduler config"),
}


def _diffusion_keys(text_encoder: bool = True) -> dict[str, WeightFile]:
    return {**_DIFFUSION_KEYS, **(_TEXT_KEYS if text_encoder else {})}


def _encoder_keys(folder: str = "image_encoder") -> dict[str, WeightFile]:
    d = f"{folder}/" if folder else ""
    return {
        "image_encoder:config": _config(f"{d}config.json", "CLIP image encoder config"),
        "image_encoder:weights": _weights(folder, "model", "pytorch_model", "CLIP image encoder"),
    }


def _adapter_keys(name: str = IP_ADAPTER_FILE) -> dict[str, WeightFile]:
    adapter = WeightFile(path=f"{name}.bin", alternatives=(f"{name}.safetensors",),
                         description="IP-Adapter projection and attention weights")  # fmt: skip
    return {"ip_adapter:weights": adapter, **_encoder_keys()}


def diffusion_spec(
    repo_id: str | None = SD15_REPO,
    *,
    name: str = "sd15",
    description: str = "",
    text_encoder: bool = True,
) -> WeightSpec:
    """The files of a diffusers checkpoint that feature extraction reads.

    The safety checker, feature extractor and ``model_index.json`` are not needed: the UNet,
    the VAE encoder, the text encoder with its tokenizer and the scheduler's config are.
    """
    files = tuple(_diffusion_keys(text_encoder).values())
    return WeightSpec(name=name, description=description, repo_id=repo_id, files=files)


def ip_adapter_spec(
    repo_id: str | None = IP_ADAPTER_REPO,
    *,
    name: str = "ip-adapter",
    adapter: str = IP_ADAPTER_FILE,
) -> WeightSpec:
    """The IP-Adapter state dict and its CLIP image encoder, in the repository's ``models``."""
    return WeightSpec(
        name=name,
        description="IP-Adapter for SD 1.5 + CLIP ViT-H-14 image encoder: the matcher's image "
        "prompts and its per-part domain choice",
        repo_id=repo_id,
        subfolder="models",
        files=tuple(_adapter_keys(adapter).values()),
    )


SD15_SPEC = diffusion_spec(
    SD15_REPO, name="sd15", description="Stable Diffusion 1.5: the matcher's features (default)"
)
SD21_SPEC = diffusion_spec(
    SD21_REPO,
    name="sd21",
    description="Stable Diffusion 2.1: the reference code's matcher setting "
    "(--model stabilityai/stable-diffusion-2-1 --no-ip-adapter)",
)
IP_ADAPTER_SPEC = ip_adapter_spec()

#: The matcher's components, for the weights catalogue (``faceshot weights list``).
MATCHER_WEIGHTS: tuple[WeightSpec, ...] = (SD15_SPEC, SD21_SPEC, IP_ADAPTER_SPEC)


@dataclass(frozen=True)
class ResolvedSource:
    """A model argument resolved to a folder, with the files found and those missing."""

    source: str  # the argument as given
    location: WeightLocation
    keys: Mapping[str, str]  # requirement key ("unet:weights") -> the spec's file path
    is_hub_id: bool = False
    catalogued: bool = False  # `faceshot weights pull <spec name>` fetches it

    @property
    def kind(self) -> str:
        return "Hugging Face cache" if self.is_hub_id else "local folder"

    @property
    def root(self) -> Path | None:
        return self.location.root

    @property
    def searched(self) -> tuple[str, ...]:
        return self.location.searched

    @property
    def ready(self) -> bool:
        return self.location.ready

    def file(self, key: str) -> Path:
        """The file found for requirement ``key`` (KeyError if it was not required/found)."""
        return self.location.file(self.keys[key])

    def variant(self, component: str) -> str | None:
        """``"fp16"`` when only a component's fp16 variant is present, else None.

        diffusers and transformers pick ``<name>.fp16.safetensors`` only when told this variant.
        """
        path = self.location.found.get(self.keys.get(f"{component}:weights", ""))
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


def _resolve(
    source: str | os.PathLike[str],
    base: WeightSpec,
    keys: Mapping[str, WeightFile],
    *,
    cache_dir: str | os.PathLike[str] | None,
    revision: str | None,
) -> ResolvedSource:
    """Look for ``base``'s files in a local folder, or in the Hub cache for a Hub id.

    A local folder is used alone: falling back to a cached model behind the user's back would
    compute features of another model than the one asked for.
    """
    text = os.fspath(source)
    paths = {key: weight.path for key, weight in keys.items()}
    local = Path(text).expanduser()
    if local.is_dir() or not _HUB_ID.match(text):
        spec = base.model_copy(update={"repo_id": None, "revision": None, "env_var": None})
        return ResolvedSource(text, find_weights(spec, local, cache_dir=cache_dir), paths)
    spec = base.model_copy(update={"repo_id": text, "revision": revision})
    known = _catalogue_entry(spec)
    if known is not None:
        spec = spec.model_copy(update={"name": known.name})
    return ResolvedSource(text, find_weights(spec, cache_dir=cache_dir), paths,
                          is_hub_id=True, catalogued=known is not None)  # fmt: skip


def _catalogue_entry(spec: WeightSpec) -> WeightSpec | None:
    """The catalogue spec whose pull fetches ``spec``'s files (same repository, a superset)."""
    for known in MATCHER_WEIGHTS:
        same_place = (known.repo_id, known.revision, known.subfolder) == (
            spec.repo_id, spec.revision, spec.subfolder)  # fmt: skip
        if same_place and set(spec.files) <= set(known.files):
            return known
    return None


def _matcher_packages_missing() -> list[str]:
    return [
        m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None
    ]


def _raise_missing(parts: Sequence[tuple[str, str, ResolvedSource]]) -> None:
    """One error for everything missing, across all sources."""
    incomplete = [(what, flag, r) for what, flag, r in parts if not r.ready]
    if not incomplete:
        return
    lines = ["model weights are missing (nothing is downloaded implicitly; how to get them below)"]
    for what, flag, r in incomplete:
        lines.append(f"{what} {r.source!r}: missing")
        hint = f"pass a folder that has these files with {flag} PATH"
        if not r.is_hub_id:  # the catalogue's default for this option fills such a folder
            default = "sd15" if flag == "--model" else "ip-adapter"
            hint += f" (e.g. one made by: faceshot weights pull {default} --to PATH)"
        lines += r.location.report(hint, pull=r.catalogued)
    packages = _matcher_packages_missing()
    if packages:
        lines.append(f"the matcher also needs {', '.join(packages)}: pip install 'faceshot[match]'")
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
    known = {SD15_REPO: SD15_SPEC, SD21_REPO: SD21_SPEC}
    base = known.get(os.fspath(model)) or diffusion_spec(None, name="model")
    resolved = _resolve(model, base, _diffusion_keys(), cache_dir=cache_dir, revision=revision)
    parts = [("Stable Diffusion model", "--model", resolved)]
    adapter: ResolvedSource | None = None
    prefix = "models/"
    if ip_adapter is not None:
        spec = ip_adapter_spec(adapter=ip_adapter_name)
        adapter = _resolve(ip_adapter, spec, _adapter_keys(ip_adapter_name),
                           cache_dir=cache_dir, revision=None)  # fmt: skip
        if adapter.root is not None and adapter.root == Path(os.fspath(ip_adapter)).expanduser():
            prefix = ""  # the `models` folder itself
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
    if local.is_dir() and (local / "config.json").is_file():
        keys = _encoder_keys("")
        spec = WeightSpec(name="image-encoder", files=tuple(keys.values()))
    else:
        keys = _encoder_keys()
        spec = ip_adapter_spec().model_copy(update={"files": tuple(keys.values())})
    resolved = _resolve(source, spec, keys, cache_dir=cache_dir, revision=revision)
    _raise_missing([("CLIP image encoder", "--image-encoder", resolved)])
    return resolved.file("image_encoder:config").parent
