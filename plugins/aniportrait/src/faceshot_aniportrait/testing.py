"""Random weights in the released file layouts, for tests and for trying the plumbing.

No real weights can be downloaded in CI, yet the loading path must be the real one.  So the
tests write a folder laid out exactly like upstream's ``pretrained_weights`` (the four ``.pth``
state dicts saved with ``torch.save``, the motion modules apart from the rest of the denoising
UNet; ``sd-vae-ft-mse/`` and ``image_encoder/`` saved by diffusers and transformers), or like
``benjamin-paine/aniportrait``'s single file, and load it through ``faceshot run --backend
aniportrait``.  ``tiny=True`` builds every network at a small configuration (a 64 px clip runs
in seconds on a CPU) and records it in the architecture file the loader reads
(:data:`faceshot_aniportrait.configs.CONFIG_FILE`); ``tiny=False`` at the released sizes (about
2.2 billion random parameters: minutes and ~10 GB of memory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch

from faceshot_aniportrait.checkpoints import MOTION_KEY, RELEASED_FILES, SINGLE_FILE
from faceshot_aniportrait.configs import CONFIG_FILE, ModelConfigs
from faceshot_aniportrait.pipeline import AniPortraitModels
from faceshot_aniportrait.pose_guider import PoseGuider
from faceshot_aniportrait.reference_unet import build_reference_unet
from faceshot_aniportrait.sampling import make_scheduler
from faceshot_aniportrait.unet3d import DenoisingUNet3D
from faceshot_aniportrait.weights import ENCODER_FOLDER, SINGLE_FILE_CONFIG, VAE_FOLDER

Layout = Literal["release", "single_file"]


def _vae(tiny: bool) -> Any:
    """SD's VAE (``sd-vae-ft-mse``'s architecture: diffusers' defaults at 4 levels), or tiny."""
    from diffusers import AutoencoderKL

    widths = (32, 32, 32, 32) if tiny else (128, 256, 512, 512)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=widths, layers_per_block=1 if tiny else 2, latent_channels=4,
        sample_size=64 if tiny else 512,
    )  # fmt: skip


def _image_encoder(projection_dim: int, tiny: bool) -> Any:
    """CLIP ViT-L/14 with projection (``sd-image-variations``' encoder), or tiny."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if tiny:
        config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=32, patch_size=8,
                                  projection_dim=projection_dim)  # fmt: skip
    else:
        config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                  num_attention_heads=16, image_size=224, patch_size=14,
                                  projection_dim=768, hidden_act="quick_gelu")  # fmt: skip
    return CLIPVisionModelWithProjection(config)


def _networks(configs: ModelConfigs) -> tuple[Any, DenoisingUNet3D, PoseGuider]:
    return (build_reference_unet(configs.reference_unet), DenoisingUNet3D(configs.denoising_unet),
            PoseGuider(configs.pose_guider))  # fmt: skip


def write_random_weights(
    folder: str | Path, *, tiny: bool = True, seed: int = 0, layout: Layout = "release"
) -> Path:
    """Write random AniPortrait weights under ``folder``; returns ``folder``.

    ``layout="release"``: ``denoising_unet.pth`` (without motion modules),
    ``motion_module.pth`` (only them), ``reference_unet.pth``, ``pose_guider.pth``,
    ``sd-vae-ft-mse/`` and ``image_encoder/``.  ``"single_file"``: ``aniportrait.safetensors``
    (components as key prefixes, motion modules merged) and its ``config.json``.
    """
    from safetensors.torch import save_file

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    configs = ModelConfigs.tiny() if tiny else ModelConfigs.released()
    reference, denoising, guider = _networks(configs)
    vae = _vae(tiny)
    encoder = _image_encoder(configs.denoising_unet.cross_attention_dim, tiny)
    if tiny:
        (root / CONFIG_FILE).write_text(configs.to_json(), encoding="utf-8")
    if layout == "single_file":
        parts = {"reference_unet": reference, "denoising_unet": denoising,
                 "pose_guider": guider, "vae": vae, "image_encoder": encoder}  # fmt: skip
        state = {f"{name}.{key}": tensor.contiguous()
                 for name, module in parts.items()
                 for key, tensor in module.state_dict().items()}  # fmt: skip
        save_file(state, root / SINGLE_FILE)
        config = {"vae": dict(vae.config), "image_encoder": encoder.config.to_dict()}
        (root / SINGLE_FILE_CONFIG).write_text(json.dumps(config, default=list), encoding="utf-8")
        return root
    motion = {k: v for k, v in denoising.state_dict().items() if MOTION_KEY in k}
    rest = {k: v for k, v in denoising.state_dict().items() if MOTION_KEY not in k}
    for name, state in (("denoising_unet", rest), ("motion_module", motion),
                        ("reference_unet", reference.state_dict()),
                        ("pose_guider", guider.state_dict())):  # fmt: skip
        torch.save(state, root / RELEASED_FILES[name])
    vae.save_pretrained(root / VAE_FOLDER)
    encoder.save_pretrained(root / ENCODER_FOLDER)
    return root


def random_models(
    *, tiny: bool = True, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> AniPortraitModels:
    """Every AniPortrait module with random weights, built directly on ``device`` (no files).

    For benchmarks: the released sizes (``tiny=False``) on a GPU cost the same time and memory
    as the released weights.
    """
    torch.manual_seed(seed)
    configs = ModelConfigs.tiny() if tiny else ModelConfigs.released()
    with torch.device(device):
        reference, denoising, guider = _networks(configs)
        modules = [reference, denoising, guider, _vae(tiny),
                   _image_encoder(configs.denoising_unet.cross_attention_dim, tiny)]  # fmt: skip
    for module in modules:
        module.to(dtype).requires_grad_(False).eval()
    reference, denoising, guider, vae, encoder = modules
    return AniPortraitModels(reference_unet=reference, denoising_unet=denoising,
                             pose_guider=guider, vae=vae, image_encoder=encoder,
                             scheduler=make_scheduler(), device=torch.device(device),
                             dtype=dtype)  # fmt: skip
