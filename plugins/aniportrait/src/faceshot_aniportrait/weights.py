"""Where AniPortrait's files are, and how they become loaded modules.

Two distributions of the weights are understood:

* **the release** - three Hugging Face repositories, one :class:`WeightSpec` each, so that
  ``faceshot weights pull aniportrait`` (and ``sd-vae-ft-mse``, ``sd-image-variations-encoder``)
  fetches exactly what the pose-to-video path reads: ``ZJYang/AniPortrait``'s
  ``denoising_unet.pth``, ``reference_unet.pth``, ``motion_module.pth`` and ``pose_guider.pth``
  (at the repository root; not the audio or interpolation models), ``stabilityai/sd-vae-ft-mse``
  and the CLIP image encoder of ``lambdalabs/sd-image-variations-diffusers``.  Nothing of Stable
  Diffusion 1.5 is needed: both UNets' weights are in AniPortrait's files and their
  architecture is a code default (:mod:`faceshot_aniportrait.configs`), as is the scheduler
  (:data:`faceshot_aniportrait.sampling.SCHEDULER_CONFIG`).  One folder may hold it all in
  upstream's ``pretrained_weights`` layout: the four ``.pth`` files at its top,
  ``sd-vae-ft-mse/`` and ``image_encoder/`` beside them;
* **the diffusers-format repackaging** ``benjamin-paine/aniportrait``: ``aniportrait.safetensors``
  (every network, keys prefixed by component; its fp16 variant also does) and the ``config.json``
  beside it, whose ``vae`` and ``image_encoder`` entries give those two architectures.  When
  found it is used alone.

Each is looked for in ``--option weights=DIR``, then ``$FACESHOT_ANIPORTRAIT_WEIGHTS``, then the
Hugging Face cache (:func:`find_all` says which layout wins where).  Loading never reaches the
network.  AniPortrait's own networks are built on the meta device and filled strictly from
their files (:mod:`faceshot_aniportrait.checkpoints`: a missing, extra or misshapen tensor is a
one-line error, never a silently different network); the VAE and the image encoder of the
release load through diffusers/transformers, which also read their older file formats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from faceshot_aniportrait.checkpoints import (
    RELEASED_FILES,
    SINGLE_FILE,
    load_denoising_unet,
    load_pose_guider,
    load_reference_unet,
    read_component,
)
from faceshot_aniportrait.configs import ModelConfigs
from faceshot_aniportrait.pipeline import AniPortraitModels
from faceshot_aniportrait.sampling import make_scheduler
from faceshot_aniportrait.unet3d import DenoisingUNet3D
from faceshot_core.checkpoints import first_line, load_into
from faceshot_core.errors import MissingDependencyError
from faceshot_core.progress import ProgressSink, report
from faceshot_core.weights import WeightFile, WeightLocation, WeightSpec, find_weights

ENV_VAR = "FACESHOT_ANIPORTRAIT_WEIGHTS"
RELEASE_REPO = "ZJYang/AniPortrait"
VAE_REPO = "stabilityai/sd-vae-ft-mse"
ENCODER_REPO = "lambdalabs/sd-image-variations-diffusers"
SINGLE_FILE_REPO = "benjamin-paine/aniportrait"
#: Where a combined folder (upstream's ``pretrained_weights``) keeps the two base models.
VAE_FOLDER = "sd-vae-ft-mse"
ENCODER_FOLDER = "image_encoder"
#: The spec files whose folders are handed to diffusers / transformers.
VAE_CONFIG, VAE_WEIGHTS = "config.json", "diffusion_pytorch_model.safetensors"
ENCODER_CONFIG, ENCODER_WEIGHTS = "config.json", "model.safetensors"
SINGLE_FILE_CONFIG = "config.json"

_RELEASE_WHAT = {
    "denoising_unet": "denoising UNet without its motion modules",
    "reference_unet": "reference UNet",
    "motion_module": "the denoising UNet's motion modules",
    "pose_guider": "PoseGuider",
}


def release_spec() -> WeightSpec:
    """AniPortrait's four pose-to-video checkpoints, at the root of ``ZJYang/AniPortrait``."""
    files = tuple(WeightFile(path=name, description=_RELEASE_WHAT[part])
                  for part, name in RELEASED_FILES.items())  # fmt: skip
    return WeightSpec(name="aniportrait", repo_id=RELEASE_REPO, files=files, env_var=ENV_VAR,
                      description="AniPortrait: reference and denoising UNets, motion modules, "
                      "PoseGuider")  # fmt: skip


def vae_spec() -> WeightSpec:
    """``stabilityai/sd-vae-ft-mse``; in a combined folder it may sit in ``sd-vae-ft-mse/``."""
    local = f"{VAE_FOLDER}/"
    config = WeightFile(path=VAE_CONFIG, alternatives=(local + VAE_CONFIG,))
    weights = WeightFile(
        path=VAE_WEIGHTS,
        alternatives=("diffusion_pytorch_model.bin", local + VAE_WEIGHTS,
                      local + "diffusion_pytorch_model.bin"),
        description="SD VAE fine-tuned with MSE",
    )  # fmt: skip
    return WeightSpec(name="sd-vae-ft-mse", repo_id=VAE_REPO, files=(config, weights),
                      env_var=ENV_VAR, description="Stable Diffusion's VAE (ft-MSE)")  # fmt: skip


def encoder_spec() -> WeightSpec:
    """The CLIP ViT-L/14 image encoder with projection of ``sd-image-variations-diffusers``."""
    weights = WeightFile(path=ENCODER_WEIGHTS, alternatives=("pytorch_model.bin",),
                         description="CLIP ViT-L/14 image encoder")  # fmt: skip
    return WeightSpec(name="sd-image-variations-encoder", repo_id=ENCODER_REPO,
                      subfolder=ENCODER_FOLDER, files=(WeightFile(path=ENCODER_CONFIG), weights),
                      env_var=ENV_VAR,
                      description="CLIP image encoder of sd-image-variations")  # fmt: skip


def single_file_spec() -> WeightSpec:
    """``benjamin-paine/aniportrait``'s single file and the config of its VAE and encoder."""
    single = WeightFile(path=SINGLE_FILE, alternatives=("aniportrait.fp16.safetensors",),
                        description="every AniPortrait network, diffusers format")  # fmt: skip
    return WeightSpec(name="aniportrait-diffusers", repo_id=SINGLE_FILE_REPO,
                      files=(single, WeightFile(path=SINGLE_FILE_CONFIG)), env_var=ENV_VAR,
                      description="AniPortrait repackaged in one safetensors file")  # fmt: skip


def _plain(spec: WeightSpec) -> WeightSpec:
    """``spec`` looked for in a given folder only (no environment variable, no cache)."""
    return spec.model_copy(update={"repo_id": None, "env_var": None})


def find_all(folder: str | os.PathLike[str] | None = None) -> tuple[WeightLocation, ...]:
    """Where each needed file is: the single-file layout alone, or the release's three specs.

    The first place holding either layout of AniPortrait's own weights wins: ``folder``, then
    ``$FACESHOT_ANIPORTRAIT_WEIGHTS``, then the Hugging Face cache (the release when all three
    of its repositories are there, else the single file).  Without any, the release's files
    are reported missing (the release is the reference).
    """
    release = (release_spec(), vae_spec(), encoder_spec())
    single = single_file_spec()
    for place in (folder, os.environ.get(ENV_VAR) or None):
        if place is None:
            continue
        if find_weights(_plain(single), place).ready:
            return (find_weights(single, folder),)
        if find_weights(_plain(release[0]), place).ready:
            break
    located = tuple(find_weights(spec, folder) for spec in release)
    if not all(loc.ready for loc in located):
        alone = find_weights(single, folder)
        if alone.ready:
            return (alone,)
    return located


# --- loading ------------------------------------------------------------------------------------


def _from_folder(location: WeightLocation, config: str, weights: str) -> Path:
    """The folder holding both the config and the weights file of a base model."""
    folder = location.file(weights).parent
    if location.file(config).parent != folder:
        raise MissingDependencyError(f"{location.spec.name}: {config} and the weights are in "
                                     f"different folders ({folder})")  # fmt: skip
    return folder


def _base_models(locations: dict[str, WeightLocation], dtype: torch.dtype) -> tuple[Any, Any]:
    """The release's VAE and CLIP image encoder, through diffusers and transformers."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    vae_dir = _from_folder(locations["sd-vae-ft-mse"], VAE_CONFIG, VAE_WEIGHTS)
    vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=dtype, local_files_only=True)
    clip_dir = _from_folder(locations["sd-image-variations-encoder"], ENCODER_CONFIG,
                            ENCODER_WEIGHTS)  # fmt: skip
    encoder = CLIPVisionModelWithProjection.from_pretrained(clip_dir, dtype=dtype,
                                                            local_files_only=True)  # fmt: skip
    return vae, encoder


def _single_file_base_models(
    location: WeightLocation, device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any]:
    """The VAE and CLIP image encoder of ``aniportrait.safetensors``, built from its config.

    ASSUMPTION (the real file was not available to check): the ``vae.`` and ``image_encoder.``
    tensors use current diffusers / transformers key names.  Strict loading names any
    difference.  CLIP's ``position_ids`` are a fixed index, kept out of checkpoints by recent
    transformers: dropped from the file when present and made here.
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    path = location.file(SINGLE_FILE)
    config = json.loads(location.file(SINGLE_FILE_CONFIG).read_text(encoding="utf-8"))
    with torch.device("meta"):
        vae: Any = AutoencoderKL.from_config(config["vae"])
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(config["image_encoder"]))
    load_into(vae, read_component(path, "vae"), dtype=dtype, device=device, source=path)
    state = {k: v for k, v in read_component(path, "image_encoder").items()
             if not k.endswith("position_ids")}  # fmt: skip
    embeddings = encoder.vision_model.embeddings
    positions = torch.arange(embeddings.num_positions, device=device).expand((1, -1))
    embeddings.register_buffer("position_ids", positions, persistent=False)
    load_into(encoder, state, dtype=dtype, device=device, source=path)
    return vae, encoder


def load_models(
    locations: Sequence[WeightLocation],
    device: torch.device,
    dtype: torch.dtype,
    *,
    offload: bool = False,
    progress: ProgressSink | None = None,
) -> AniPortraitModels:
    """Load every module from ready ``locations`` (:func:`find_all`'s) onto ``device`` (the
    CPU when offloading), in ``dtype``."""
    by_name = {loc.spec.name: loc for loc in locations}
    not_ready = [loc for loc in locations if not loc.ready or loc.root is None]
    if not_ready or not by_name:
        summary = "; ".join(loc.summary() for loc in not_ready) or "no weights given"
        raise MissingDependencyError(f"AniPortrait weights are incomplete: {summary}")
    home = torch.device("cpu") if offload else device
    single = by_name.get("aniportrait-diffusers")
    own = single or by_name["aniportrait"]
    root = own.root
    assert root is not None
    source = own.file(SINGLE_FILE) if single is not None else root
    total = 5
    report(progress, "loading weights", 0, total, "modules")
    try:
        configs = ModelConfigs.beside(root)
        reference = load_reference_unet(source, configs.reference_unet, device=home, dtype=dtype)
        report(progress, "loading weights", 1, total, "modules")
        with torch.device("meta"):
            denoising = DenoisingUNet3D(configs.denoising_unet)
        load_denoising_unet(denoising, source, device=home, dtype=dtype)
        report(progress, "loading weights", 2, total, "modules")
        guider = load_pose_guider(source, configs.pose_guider, device=home, dtype=dtype)
        report(progress, "loading weights", 3, total, "modules")
        if single is not None:
            vae, encoder = _single_file_base_models(single, home, dtype)
        else:
            vae, encoder = _base_models(by_name, dtype)
        report(progress, "loading weights", 4, total, "modules")
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise MissingDependencyError(f"could not load the AniPortrait weights from {root}: "
                                     f"{first_line(exc)}") from exc  # fmt: skip
    modules: tuple[Any, ...] = (reference, denoising, guider, vae, encoder)
    for module in modules:
        module.requires_grad_(False)
        module.eval()
        module.to(home)
    report(progress, "loading weights", total, total, "modules")
    return AniPortraitModels(reference_unet=reference, denoising_unet=denoising,
                             pose_guider=guider, vae=vae, image_encoder=encoder,
                             scheduler=make_scheduler(), device=device, dtype=dtype,
                             offload=offload)  # fmt: skip


__all__ = [
    "ENV_VAR",
    "encoder_spec",
    "find_all",
    "load_models",
    "release_spec",
    "single_file_spec",
    "vae_spec",
]
