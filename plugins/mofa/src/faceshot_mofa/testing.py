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
from typing import Any

import torch

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


def _unet(adapter_config: Any, tiny: bool) -> Any:
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


def write_random_weights(
    folder: str | Path, *, tiny: bool = True, seed: int = 0, fp16: bool = True
) -> Path:
    """Write random MOFA weights under ``folder`` in the released layout; returns ``folder``.

    ``fp16``: the SVD parts as ``*.fp16.safetensors`` (as released); otherwise full precision
    under the plain names (both are accepted by the loader).
    """
    from diffusers import EulerDiscreteScheduler

    from faceshot_mofa.adapter import AdapterConfig
    from faceshot_mofa.cmp import CMPConfig, SparseToDenseFlow
    from faceshot_mofa.landmark_adapter import LandmarkAdapter, save_adapter, tiny_adapter_config

    root = Path(folder)
    torch.manual_seed(seed)
    adapter_config = tiny_adapter_config() if tiny else AdapterConfig()
    variant = "fp16" if fp16 else None
    dtype = torch.float16 if fp16 else torch.float32
    svd = root / SVD
    for name, module in (("unet", _unet(adapter_config, tiny)), ("vae", _vae(tiny))):
        module.to(dtype).save_pretrained(svd / name, variant=variant)
        del module
    encoder = _image_encoder(adapter_config.cross_attention_dim, tiny)
    encoder.to(dtype).save_pretrained(svd / "image_encoder", variant=variant)
    del encoder
    scheduler: Any = EulerDiscreteScheduler(**SCHEDULER_CONFIG)
    scheduler.save_pretrained(svd / "scheduler")
    save_adapter(LandmarkAdapter(adapter_config), root / ADAPTER)
    network = SparseToDenseFlow(CMPConfig.tiny() if tiny else CMPConfig())
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    (root / CMP).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 42000, "state_dict": state, "optimizer": {"state": {}}}, root / CMP)
    (root / "README.md").write_text(json.dumps({"random": True, "tiny": tiny, "seed": seed}))
    return root
