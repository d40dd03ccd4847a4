"""The problem the MOFA-Video parity check poses to upstream's code: sizes, configurations,
random weights and random inputs.

Imported by ``upstream_side.py`` in the upstream environment (plain torch, no upstream import).
The sizes and configurations are recorded in ``meta.json``, which ``our_side.py`` reads.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional

#: Image height and width (multiples of 64; not square, so that a swapped axis shows).
HEIGHT, WIDTH = 128, 192
#: Frames in the window (frame 0 is the reference); the adapter sees FRAMES - 1 flows.
FRAMES = 4
#: Index of the denoising step compared (of 25, as the pipelines run).
STEP_INDEX = 10
NUM_INFERENCE_STEPS = 25
SEED = 20261130

#: The SVD-xt(-1.1) UNet configuration (``unet/config.json`` of the released base model).
SVD_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    ],
    "up_block_types": [
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    ],
    "block_out_channels": [320, 640, 1280, 1280],
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [5, 10, 20, 20],
    "num_frames": 25,
}

#: The SVD-xt(-1.1) scheduler configuration (``scheduler/scheduler_config.json``).  Upstream's
#: pipeline is built with ``from_pretrained`` on that folder, which instantiates the class named
#: there, diffusers' own ``EulerDiscreteScheduler`` (the ``karras_fix`` copy in upstream's
#: ``utils/`` is only a type annotation); both are run here.
SVD_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}

#: Hard-coded by upstream's pipeline (fps 6, motion bucket 128, noise augmentation 0.02).
ADDED_TIME_IDS = (6.0, 128.0, 0.02)
#: CMP experiment whose config the released checkpoint belongs to.
CMP_EXPERIMENT = "models/cmp/experiments/semiauto_annot/resnet50_vip+mpii_liteflow"
CMP_ITER = 1


# --- random weights ---------------------------------------------------------------------------
def randomize_(module: nn.Module, seed: int) -> None:
    """Overwrite every parameter: weights N(0, 1/fan_in), norm scales 1 + N(0, 0.1), rest N(0, .05).

    Every tensor is random, the zero-initialised output convolutions included, so the check sees
    every path.  Unit-variance weights keep activations of the deep networks in range.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=gen)
            elif name.endswith("weight"):
                p.normal_(1.0, 0.1, generator=gen)
            else:
                p.normal_(0.0, 0.05, generator=gen)


def calibrate_batchnorm_(
    module: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Give CMP's BatchNorm layers running statistics that match its random weights."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    module.train()
    with torch.no_grad():
        for image, sparse in batches:
            module(image, sparse)
    module.eval()


# --- inputs -----------------------------------------------------------------------------------
def _smooth(gen: torch.Generator, shape: tuple[int, ...], size: tuple[int, int]) -> torch.Tensor:
    coarse = torch.randn(*shape, generator=gen)
    return functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)


def make_landmarks(gen: torch.Generator) -> torch.Tensor:
    """[FRAMES, 68, 2] (x, y) pixels; frame 0's points fall on distinct pixels at both sizes.

    Later frames move by a few pixels, and two points leave the image (negative and past the
    right edge) so that the sparse flow's clipping and the drawing's truncation are exercised.
    """
    for _ in range(1000):
        base = torch.rand(68, 2, generator=gen) * torch.tensor([WIDTH - 16.0, HEIGHT - 16.0]) + 8
        native = (base[:, 1].long() * WIDTH + base[:, 0].long()).unique().numel()
        at384 = base * torch.tensor([384.0 / WIDTH, 384.0 / HEIGHT])
        scaled = (at384[:, 1].long() * 384 + at384[:, 0].long()).unique().numel()
        if native == 68 and scaled == 68:
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError("could not draw 68 distinct landmark pixels")
    frames = [base]
    for _ in range(1, FRAMES):
        frames.append(base + 4.0 * torch.randn(68, 2, generator=gen))
    landmarks = torch.stack(frames)
    landmarks[2, 5] = torch.tensor([-3.7, 20.2])
    landmarks[3, 9] = torch.tensor([WIDTH + 2.5, HEIGHT - 0.5])
    return landmarks


def make_inputs(gen: torch.Generator) -> dict[str, torch.Tensor]:
    h, w = HEIGHT // 8, WIDTH // 8
    image = (torch.sigmoid(2.0 * _smooth(gen, (1, 3, 6, 8), (HEIGHT, WIDTH)))[0] * 255).round()
    image = image / 255.0  # [3, H, W] in [0, 1], as from an 8-bit picture
    # A smooth flow with some large motions (targets leave the image at every scale) plus a
    # little per-pixel noise so that no target falls exactly on a pixel.
    flow = 12.0 * _smooth(gen, (FRAMES - 1, 2, 3, 4), (HEIGHT, WIDTH))
    flow = flow + 0.3 * torch.randn(flow.shape, generator=gen)
    cond = torch.randn(1, 1, 1024, generator=gen)
    return {
        "image": image,
        "landmarks": make_landmarks(gen),
        "flow": flow.unsqueeze(0),  # [1, F-1, 2, H, W]
        "latents": torch.randn(1, FRAMES, 4, h, w, generator=gen),  # scaled by sigma below
        "image_latents": torch.randn(1, 1, 4, h, w, generator=gen).repeat(1, FRAMES, 1, 1, 1),
        # Classifier-free guidance batch: unconditional first (zeros), as upstream's
        # ``_encode_image`` builds it.
        "encoder_hidden_states": torch.cat([torch.zeros_like(cond), cond]),
    }
