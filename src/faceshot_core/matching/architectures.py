"""The released architectures the matcher loads, as configs (facts, not weights).

Stable Diffusion 1.5 and 2.1 U-Nets, their VAE, the CLIP ViT-L/14 text encoder of SD 1.5 and
IP-Adapter's CLIP ViT-H/14 image encoder, with the scheduler configs shipped in the released
checkpoints.  Used to build full-size modules on the ``meta`` device (to check that what we
construct has exactly the state-dict layout of the released weights) and full-size random-weight
modules for benchmarks; loading real weights reads the checkpoint's own config instead.
"""

from __future__ import annotations

from typing import Any

SD_DOWN_BLOCKS = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
SD_UP_BLOCKS = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3

#: scheduler/scheduler_config.json of SD 1.5 (PNDM, epsilon prediction).
SD15_SCHEDULER: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
#: scheduler/scheduler_config.json of SD 2.1 (DDIM, v-prediction).
SD21_SCHEDULER: dict[str, Any] = {
    "_class_name": "DDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
#: UNet2DConditionModel config of SD 1.5 (859.5M parameters).
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "block_out_channels": (320, 640, 1280, 1280),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "layers_per_block": 2,
    "down_block_types": SD_DOWN_BLOCKS,
    "up_block_types": SD_UP_BLOCKS,
}
#: UNet2DConditionModel config of SD 2.1 (865.9M parameters).
SD21_UNET: dict[str, Any] = {
    **SD15_UNET,
    "sample_size": 96,
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
}
#: AutoencoderKL config shared by SD 1.5 and 2.1 (83.7M parameters).
SD_VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "latent_channels": 4,
    "layers_per_block": 2,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "sample_size": 512,
}
#: CLIPTextConfig of SD 1.5's text encoder, CLIP ViT-L/14 (123.1M parameters).
CLIP_L_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
#: CLIPVisionConfig of IP-Adapter's image encoder, OpenCLIP ViT-H/14 (632.1M parameters).
CLIP_H_VISION: dict[str, Any] = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}


def build(kind: str) -> Any:
    """A full-size module of ``kind`` (``unet15``, ``unet21``, ``vae``, ``text``, ``image``).

    Weights are randomly initialised; build under ``torch.device("meta")`` for layout checks.
    """
    if kind in ("unet15", "unet21", "vae"):
        from diffusers import AutoencoderKL, UNet2DConditionModel

        if kind == "vae":
            return AutoencoderKL(**SD_VAE)
        return UNet2DConditionModel(**(SD15_UNET if kind == "unet15" else SD21_UNET))
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    if kind == "text":
        return CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT))
    if kind == "image":
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_H_VISION))
    raise ValueError(f"unknown architecture {kind!r}")
