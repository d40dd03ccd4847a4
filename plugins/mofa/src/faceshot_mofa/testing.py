"""Random weights in the released file layout, for tests and for trying the plumbing.

No real weights can be downloaded in CI, yet the loading path must be the real one.  So the
tests write a folder laid out exactly like ``MyNiuuu/MOFA-Video-Hybrid`` (the same paths, the
fp16 variants where the release ships fp16, the CMP checkpoint as the same nested dict with
``module.`` prefixes) and load it through ``faceshot run --backend mofa``.  ``tiny=True`` builds
every module at a small configuration (64 px clips run in seconds on a CPU); ``tiny=False`` at
the released sizes (about 3 billion random parameters: minutes and ~12 GB of memory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import torch

from faceshot_mofa.pipeline import MofaModels
from faceshot_mofa.weights import ADAPTER, CMP, SVD

#: The released SVD xt 1.1 scheduler's settings (``scheduler/scheduler_config.json``).
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}


def build_unet(adapter_config: Any, tiny: bool) -> Any:
    """The SVD UNet at the released size, or tiny with the widths of ``adapter_config``."""
    from diffusers import UNetSpatioTemporalConditionModel

    if not tiny:
        return UNetSpatioTemporalConditionModel()  # diffusers' defaults are SVD's
    c = adapter_config
    return UNetSpatioTemporalConditionModel(
        sample_size=8, in_channels=c.in_channels, out_channels=4,
        block_out_channels=c.block_out_channels, num_attention_heads=c.num_attention_heads,
        layers_per_block=c.layers_per_block, cross_attention_dim=c.cross_attention_dim,
        addition_time_embed_dim=c.addition_time_embed_dim,
        projection_class_embeddings_input_dim=c.projection_class_embeddings_input_dim,
        num_frames=c.num_frames,
    )  # fmt: skip


def _vae(tiny: bool) -> Any:
    from diffusers import AutoencoderKLTemporalDecoder

    widths = (32, 32, 32, 32) if tiny else (128, 256, 512, 512)
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=widths,
        layers_per_block=1 if tiny else 2, latent_channels=4, sample_size=64 if tiny else 768,
    )  # fmt: skip


def _image_encoder(projection_dim: int, tiny: bool) -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if tiny:
        config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=32, patch_size=8,
                                  projection_dim=projection_dim)  # fmt: skip
    else:  # OpenCLIP ViT-H/14, as SVD ships it
        config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                  num_attention_heads=16, image_size=224, patch_size=14,
                                  projection_dim=1024, hidden_act="gelu")  # fmt: skip
    return CLIPVisionModelWithProjection(config)


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def randomize_zeros(module: ModuleT, std: float = 0.02) -> ModuleT:
    """Give random values to parameters that start at zero (returns ``module``).

    ControlNet-style modules zero-initialise their output convolutions so that training starts
    from the base model; with those zeros a random adapter would feed nothing to the UNet and
    a test could not see whether the landmarks reach it.  Released weights are never zero.
    """
    with torch.no_grad():
        for param in module.parameters():
            if param.numel() and not bool(param.any()):
                param.normal_(0.0, std)
    return module


def write_random_weights(
    folder: str | Path, *, tiny: bool = True, seed: int = 0, fp16: bool = True
) -> Path:
    """Write random MOFA weights under ``folder`` in the released layout; returns ``folder``.

    ``fp16``: the SVD parts as ``*.fp16.safetensors`` (as released); otherwise full precision
    under the plain names (both are accepted by the loader).
    """
    from diffusers import EulerDiscreteScheduler

    from faceshot_mofa.adapter import AdapterConfig
    from faceshot_mofa.adapter_files import save_adapter
    from faceshot_mofa.cmp import CMPConfig, SparseToDenseFlow
    from faceshot_mofa.landmark_adapter import LandmarkAdapter, tiny_adapter_config

    root = Path(folder)
    torch.manual_seed(seed)
    adapter_config = tiny_adapter_config() if tiny else AdapterConfig()
    variant = "fp16" if fp16 else None
    dtype = torch.float16 if fp16 else torch.float32
    svd = root / SVD
    for name, module in (("unet", build_unet(adapter_config, tiny)), ("vae", _vae(tiny))):
        module.to(dtype).save_pretrained(svd / name, variant=variant)
        del module
    encoder = _image_encoder(adapter_config.cross_attention_dim, tiny)
    encoder.to(dtype).save_pretrained(svd / "image_encoder", variant=variant)
    del encoder
    scheduler: Any = EulerDiscreteScheduler(**SCHEDULER_CONFIG)
    scheduler.save_pretrained(svd / "scheduler")
    save_adapter(randomize_zeros(LandmarkAdapter(adapter_config)), root / ADAPTER)
    network = SparseToDenseFlow(CMPConfig.tiny() if tiny else CMPConfig())
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    (root / CMP).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 42000, "state_dict": state, "optimizer": {"state": {}}}, root / CMP)
    (root / "README.md").write_text(json.dumps({"random": True, "tiny": tiny, "seed": seed}))
    return root


def random_models(
    *, tiny: bool = True, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> MofaModels:
    """Every MOFA module with random weights, built directly on ``device`` (no files).

    For benchmarks: the released sizes (``tiny=False``) on a GPU cost the same time and memory
    as the released weights.  CMP stays in float32, as the loader keeps it.
    """
    from diffusers import EulerDiscreteScheduler

    from faceshot_mofa.adapter import AdapterConfig
    from faceshot_mofa.cmp import CMPConfig, SparseToDenseFlow
    from faceshot_mofa.landmark_adapter import LandmarkAdapter, tiny_adapter_config

    torch.manual_seed(seed)
    config = tiny_adapter_config() if tiny else AdapterConfig()
    with torch.device(device):
        modules = [
            build_unet(config, tiny).to(dtype),
            _vae(tiny).to(dtype),
            _image_encoder(config.cross_attention_dim, tiny).to(dtype),
            randomize_zeros(LandmarkAdapter(config)).to(dtype),
            SparseToDenseFlow(CMPConfig.tiny() if tiny else CMPConfig()),
        ]
    for module in modules:
        module.requires_grad_(False)
        module.eval()
    unet, vae, image_encoder, adapter, cmp = modules
    return MofaModels(unet=unet, vae=vae, image_encoder=image_encoder, adapter=adapter, cmp=cmp,
                      scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
                      device=torch.device(device), dtype=dtype)  # fmt: skip
