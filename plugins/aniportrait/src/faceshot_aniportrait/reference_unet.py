"""AniPortrait's reference UNet: Stable Diffusion 1.5's UNet without its output head.

The reference UNet runs once per video, at t = 0, on the reference image's latents; what the
pipeline wants from it is the input of every transformer block's self-attention (captured by
reference-attention hooks), not its output.  The released ``reference_unet.pth`` therefore has
no ``conv_norm_out``/``conv_out``: 682 tensors, 859,508,800 parameters, every other key and
shape exactly those of diffusers' ``UNet2DConditionModel`` at the SD 1.5 configuration (the up
path included: its blocks are hooked too).

So the module here *is* diffusers' ``UNet2DConditionModel``, with the head removed by
:func:`drop_head`: ``conv_norm_out`` and ``conv_act`` set to ``None`` (diffusers skips them
then) and ``conv_out`` replaced by an ``nn.Identity`` (no parameters).  Its ordinary forward
then returns the last up block's output (320 channels at the latents' size), as upstream's
head-less variant does, and its state dict equals the released one.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DConditionModel
from torch import nn

#: ``runwayml/stable-diffusion-v1-5``'s ``unet/config.json`` (the values that shape the model).
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    # diffusers' legacy name: SD 1.5's value is the number of heads (8), not their width
    "attention_head_dim": 8,
}


def tiny_unet_config() -> dict[str, Any]:
    """SD 1.5's structure (same blocks, same 16 transformer blocks, same key names) at tiny
    widths, for tests: 32/64/128/128 channels, 2 heads, a 16-wide context, 8x8 latents."""
    return {
        **SD15_UNET_CONFIG,
        "sample_size": 8,
        "block_out_channels": (32, 64, 128, 128),
        "norm_num_groups": 8,
        "cross_attention_dim": 16,
        "attention_head_dim": 2,
    }


def drop_head(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """Remove ``conv_norm_out``, ``conv_act`` and ``conv_out`` in place; returns ``unet``.

    Afterwards the forward pass ends with the last up block, and the state dict has no head
    keys (the released reference UNet's layout).
    """
    module: Any = unet  # diffusers' models are untyped for mypy
    module.conv_norm_out = None
    module.conv_act = None
    module.conv_out = nn.Identity()
    return unet


def build_reference_unet(config: dict[str, Any] | None = None) -> UNet2DConditionModel:
    """The head-less reference UNet at ``config`` (SD 1.5's by default), randomly initialised.

    Build it under ``torch.device("meta")`` and load weights with
    :func:`faceshot_aniportrait.checkpoints.load_reference_unet` to avoid the initialisation.
    """
    return drop_head(UNet2DConditionModel(**(config or SD15_UNET_CONFIG)))


def has_head(unet: UNet2DConditionModel) -> bool:
    """Whether ``unet`` still has its output head (then it is not the reference UNet's layout)."""
    module: Any = unet
    return not isinstance(module.conv_out, nn.Identity) or module.conv_norm_out is not None


def run_reference(
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    context: torch.Tensor,
    timestep: float | torch.Tensor = 0,
) -> torch.Tensor:
    """One pass of the reference UNet; returns the last up block's output ``[B, 320, h, w]``.

    ``latents``: the reference image's VAE-mean latents times 0.18215, ``[B, 4, h, w]``;
    ``context``: the cross-attention context ``[B, L, 768]`` (AniPortrait runs B = 2 with the
    zero and the CLIP-embedding contexts); ``timestep``: 0 in AniPortrait.  The output itself
    is not used by AniPortrait: what matters is what hooks on the transformer blocks see.
    Raises ``ValueError`` for a UNet that still has its head (its output would be 4 channels).
    """
    if has_head(unet):
        raise ValueError("run_reference needs the head-less reference UNet (see drop_head)")
    t = torch.as_tensor(timestep, device=latents.device)
    module: Any = unet
    out = module(latents, t, encoder_hidden_states=context, return_dict=False)
    result: torch.Tensor = out[0]
    return result
