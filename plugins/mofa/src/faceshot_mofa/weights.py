"""Where MOFA's released files are, and how they become loaded modules.

The files are those of the Hugging Face repository ``MyNiuuu/MOFA-Video-Hybrid``, in its own
layout, so a snapshot in the Hugging Face cache, a folder made by ``hf download ... --local-dir``
and a copy brought from another machine are all found the same way (``--option weights=DIR``,
``$FACESHOT_MOFA_WEIGHTS``, then the cache; see :mod:`faceshot_core.weights`).  Only what the
landmark path needs is listed, so ``faceshot weights pull mofa`` fetches about 7 GB and not the
repository's audio models and face restorers.

Loading never reaches the network (``local_files_only``), reads the fp16 variant of the SVD
parts when the folder has it (the released one does) and the full-precision files otherwise,
and builds each module at the released configuration found beside its weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from faceshot_core.errors import MissingDependencyError
from faceshot_core.progress import ProgressSink, report
from faceshot_core.weights import WeightFile, WeightLocation, WeightSpec
from faceshot_mofa.pipeline import MofaModels

REPO_ID = "MyNiuuu/MOFA-Video-Hybrid"
ENV_VAR = "FACESHOT_MOFA_WEIGHTS"
SVD = "ckpts/mofa/stable-video-diffusion-img2vid-xt-1-1"
ADAPTER = "ckpts/mofa/ldmk_controlnet"
CMP = "models/cmp/experiments/semiauto_annot/resnet50_vip+mpii_liteflow/checkpoints/ckpt_iter_42000.pth.tar"  # noqa: E501


def _variant(folder: str, name: str, what: str) -> WeightFile:
    """A safetensors file whose released form is the fp16 variant; the fp32 one also does."""
    stem, _dot, ext = name.rpartition(".")
    return WeightFile(path=f"{folder}/{stem}.fp16.{ext}", alternatives=(f"{folder}/{name}",),
                      description=what)  # fmt: skip


def weight_spec() -> WeightSpec:
    """Every file the landmark-driven MOFA needs, as paths of the released repository."""
    files = (
        WeightFile(path=f"{SVD}/unet/config.json"),
        _variant(f"{SVD}/unet", "diffusion_pytorch_model.safetensors", "SVD xt 1.1 UNet"),
        WeightFile(path=f"{SVD}/vae/config.json"),
        _variant(f"{SVD}/vae", "diffusion_pytorch_model.safetensors", "SVD temporal VAE"),
        WeightFile(path=f"{SVD}/image_encoder/config.json"),
        _variant(f"{SVD}/image_encoder", "model.safetensors", "CLIP ViT-H image encoder"),
        WeightFile(path=f"{SVD}/scheduler/scheduler_config.json"),
        WeightFile(path=f"{ADAPTER}/config.json"),
        WeightFile(
            path=f"{ADAPTER}/diffusion_pytorch_model.safetensors",
            description="landmark adapter (FlowControlNet)",
        ),
        WeightFile(path=CMP, description="CMP sparse-to-dense flow network"),
    )
    return WeightSpec(
        name="mofa",
        description="MOFA-Video: SVD xt 1.1, the landmark adapter and CMP",
        repo_id=REPO_ID,
        files=files,
        env_var=ENV_VAR,
    )


def _fp16_variant(folder: Path, name: str) -> str | None:
    """``"fp16"`` when ``folder`` holds the fp16 file ``name`` names, else ``None``."""
    stem, _, ext = name.rpartition(".")
    return "fp16" if (folder / f"{stem}.fp16.{ext}").is_file() else None


def load_models(
    location: WeightLocation,
    device: torch.device,
    dtype: torch.dtype,
    *,
    offload: bool = False,
    progress: ProgressSink | None = None,
) -> MofaModels:
    """Load every module from a ready ``location`` onto ``device`` (the CPU when offloading)."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPVisionModelWithProjection

    from faceshot_mofa.adapter_files import load_adapter
    from faceshot_mofa.cmp import load_cmp

    if location.root is None or not location.ready:
        raise MissingDependencyError(f"MOFA weights are incomplete: {location.summary()}")
    root = location.root
    svd = root / SVD
    home = torch.device("cpu") if offload else device
    steps = 5
    report(progress, "loading weights", 0, steps, "modules")
    try:
        unet_dir = svd / "unet"
        unet = UNetSpatioTemporalConditionModel.from_pretrained(
            unet_dir, variant=_fp16_variant(unet_dir, "diffusion_pytorch_model.safetensors"),
            torch_dtype=dtype, local_files_only=True,
        )  # fmt: skip
        report(progress, "loading weights", 1, steps, "modules")
        vae_dir = svd / "vae"
        vae = AutoencoderKLTemporalDecoder.from_pretrained(
            vae_dir, variant=_fp16_variant(vae_dir, "diffusion_pytorch_model.safetensors"),
            torch_dtype=dtype, local_files_only=True,
        )  # fmt: skip
        clip_dir = svd / "image_encoder"
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            clip_dir, variant=_fp16_variant(clip_dir, "model.safetensors"), dtype=dtype,
            local_files_only=True,
        )  # fmt: skip
        scheduler = EulerDiscreteScheduler.from_pretrained(svd / "scheduler",
                                                           local_files_only=True)  # fmt: skip
        report(progress, "loading weights", 2, steps, "modules")
        adapter = load_adapter(root / ADAPTER, device="cpu", dtype=dtype)
        report(progress, "loading weights", 3, steps, "modules")
        # CMP is small (28 M parameters) and its flow feeds every frame: float32 everywhere.
        cmp = load_cmp(location.file(CMP), device="cpu", dtype=torch.float32)
        report(progress, "loading weights", 4, steps, "modules")
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingDependencyError(f"could not load the MOFA weights from {root}: "
                                     f"{first}") from exc  # fmt: skip
    modules = [unet, vae, image_encoder, adapter, cmp]
    for module in modules:
        module.requires_grad_(False)
        module.eval()
        module.to(home)
    report(progress, "loading weights", steps, steps, "modules")
    return MofaModels(unet=unet, vae=vae, image_encoder=image_encoder, adapter=adapter, cmp=cmp,
                      scheduler=scheduler, device=device, dtype=dtype,
                      offload=offload)  # fmt: skip
