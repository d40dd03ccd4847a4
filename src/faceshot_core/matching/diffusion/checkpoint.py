"""Stable Diffusion's modules from a checkpoint already located on disk (never downloading).

:func:`~faceshot_core.matching.weights.locate_weights` finds every file first and reports all
missing ones at once; this module only turns the located folder into the UNet, VAE, text
encoder, tokenizer and scheduler config, with ``local_files_only`` everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faceshot_core.matching.runtime import require_diffusers, require_transformers


def load_modules(source: Any, dtype: Any) -> dict[str, Any]:
    """UNet, VAE, text encoder, tokenizer and scheduler config of a located checkpoint."""
    diffusers = require_diffusers()
    transformers = require_transformers()
    root = Path(source.root)
    unet = diffusers.UNet2DConditionModel.from_pretrained(
        root,
        subfolder="unet",
        local_files_only=True,
        torch_dtype=dtype,
        variant=source.variant("unet"),
    )
    vae = diffusers.AutoencoderKL.from_pretrained(
        root, subfolder="vae", local_files_only=True, variant=source.variant("vae")
    )
    text_encoder = transformers.CLIPTextModel.from_pretrained(
        root / "text_encoder", local_files_only=True, variant=source.variant("text_encoder")
    )
    tokenizer = transformers.CLIPTokenizer.from_pretrained(
        root / "tokenizer", local_files_only=True
    )
    config = json.loads(source.file("scheduler:config").read_text())
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler_config": config,
    }
