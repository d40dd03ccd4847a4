"""The problem the AniPortrait parity check poses to upstream's code: sizes, configurations,
random weights and random inputs.

Imported by ``upstream_side.py`` in the upstream environment (plain torch, numpy and OpenCV; no
upstream import).  The sizes and configurations are recorded in ``meta.json``, which
``our_side.py`` reads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

#: Image height and width: latents 32 x 24 (not square, so that a swapped axis shows; every
#: level of the UNet and of the PoseGuider keeps whole sizes: 32x24 .. 4x3).
HEIGHT, WIDTH = 256, 192
#: Frames in the window (one context window: upstream's scheduler gives a single window
#: ``[0 .. FRAMES-1]`` when a video is no longer than its 16-frame context).
FRAMES = 8
#: Index of the denoising step run through upstream's pipeline (of 25, as the scripts run).
STEP_INDEX = 10
NUM_INFERENCE_STEPS = 25
#: The scripts' classifier-free guidance scale and seed.
GUIDANCE_SCALE = 3.5
PIPELINE_SEED = 42
SEED = 20261130
#: Upstream's inference configuration (UNet additional kwargs, scheduler kwargs), read from the
#: checkout at run time.
INFERENCE_CONFIG = "configs/inference/inference_v2.yaml"

#: ``runwayml/stable-diffusion-v1-5``'s ``unet/config.json``, from which the scripts build both
#: UNets (the reference UNet with upstream's head-less ``UNet2DConditionModel``, the denoising
#: UNet through ``UNet3DConditionModel.from_pretrained_2d``).
SD15_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
}

#: mediapipe-style colours of AniPortrait's pose drawings (RGB), for the synthetic pose images.
PALETTE = (
    (10, 200, 10), (10, 200, 180), (180, 200, 10), (10, 220, 180), (180, 220, 10),
    (20, 80, 100), (80, 100, 20), (10, 180, 20), (20, 10, 180), (120, 100, 200),
)  # fmt: skip


# --- random weights ---------------------------------------------------------------------------
def randomize_(module: nn.Module, seed: int) -> None:
    """Overwrite every parameter: weights N(0, 1/fan_in), norm scales 1 + N(0, 0.1), the
    PoseGuider's ``scale`` 2 + N(0, 0.1), everything else N(0, 0.05).

    Every tensor is random, the zero-initialised ones included (upstream zeroes
    ``final_proj`` of the PoseGuider and ``proj_out`` of every motion module), so the check
    sees every path.  The motion modules' ``pos_encoder.pe`` buffers get N(0, 0.05) added, so
    that a reader which recomputed them instead of loading them would show.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=gen)
            elif name == "scale":
                p.normal_(2.0, 0.1, generator=gen)
            elif name.endswith("weight"):
                p.normal_(1.0, 0.1, generator=gen)
            else:
                p.normal_(0.0, 0.05, generator=gen)
        for name, b in module.named_buffers():
            if name.endswith("pos_encoder.pe"):
                b.add_(torch.randn(b.shape, generator=gen) * 0.05)


def calibrate_batchnorm_(guider: nn.Module, pose: torch.Tensor, ref_pose: torch.Tensor) -> None:
    """Running statistics for the PoseGuider's BatchNorms, measured on other pose images.

    Plausible for the random weights (so eval-mode features stay in range) but not those of
    the check's own frames, so batch-statistics and running-statistics outputs differ.  The
    momentum is put back to PyTorch's 0.1 afterwards, as in the released module.
    """
    bns = [m for m in guider.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration call
    guider.train()
    with torch.no_grad():
        guider(pose, ref_pose)
    for m in bns:
        m.momentum = 0.1


# --- inputs -----------------------------------------------------------------------------------
def _smooth(gen: torch.Generator, shape: tuple[int, ...], size: tuple[int, int]) -> torch.Tensor:
    coarse = torch.randn(*shape, generator=gen)
    return functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)


def pose_drawings(seed: int, frames: int) -> np.ndarray:
    """uint8 ``[frames, H, W, 3]`` RGB: coloured 2-px polylines on black, moving a little.

    Stand-ins for upstream's mediapipe drawings (only the network inputs matter here): the
    same kind of picture, sparse lines of the pose palette on a black canvas.
    """
    import cv2

    rng = np.random.default_rng(seed)
    curves = []
    for colour in PALETTE:
        start = rng.uniform((20, 20), (WIDTH - 20, HEIGHT - 20))
        steps = rng.normal(0.0, 12.0, size=(rng.integers(4, 9), 2))
        curves.append((colour, start + np.cumsum(steps, axis=0), rng.normal(0, 1.5, size=2)))
    out = np.zeros((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for f in range(frames):
        for colour, points, drift in curves:
            moved = points + f * drift + rng.normal(0.0, 0.7, size=points.shape)
            pixels = np.floor(moved).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(out[f], [pixels], False, colour, 2, lineType=cv2.LINE_8)
    return out


def make_inputs(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The check's inputs; uint8 images as tensors (``[.., H, W, 3]``)."""
    h, w = HEIGHT // 8, WIDTH // 8
    image = torch.sigmoid(2.0 * _smooth(gen, (1, 3, 6, 5), (HEIGHT, WIDTH)))[0]
    return {
        "pose_images": torch.from_numpy(pose_drawings(SEED + 10, FRAMES)),
        "ref_pose_image": torch.from_numpy(pose_drawings(SEED + 11, 1)[0]),
        "calibration_pose_images": torch.from_numpy(pose_drawings(SEED + 12, FRAMES)),
        "ref_image": (image.permute(1, 2, 0) * 255).round().to(torch.uint8),
        # What the VAE's encoder would give as the reference's latent mean (the pipeline
        # multiplies it by 0.18215), and CLIP's image embedding.
        "ref_latent_mean": 5.0 * torch.randn(1, 4, h, w, generator=gen),
        "clip_image_embeds": torch.randn(1, 768, generator=gen),
        # Latents for the UNet forward outside the pipeline (batch 1, conditional context).
        "unet_latents": torch.randn(1, 4, FRAMES, h, w, generator=gen),
    }
