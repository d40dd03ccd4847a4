"""The DDIM inversion schedule and the UNet blocks features are read from.

FaceShot's features come from one point of one schedule: t=301 on the 50-step "leading" grid
(1, 21, ..., 981), at the output of ``unet.up_blocks[1]``.  A timestep means nothing on another
grid, so the spacing is imposed here rather than taken from the model's scheduler config.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from faceshot_core.matching.runtime import require_diffusers


def inverse_scheduler(config: Mapping[str, Any], num_inference_steps: int = 50) -> Any:
    """``DDIMInverseScheduler`` from a model's scheduler config, on FaceShot's timestep grid.

    Betas, ``set_alpha_to_one``, ``clip_sample`` and ``prediction_type`` come from the model
    (SD 1.5 and 2.1 ship ``set_alpha_to_one: false``, ``clip_sample: false``); the spacing is
    imposed ("leading", offset 1: timesteps 1, 21, ..., 981 for 50 steps) because t=301 is a
    point of that grid and means nothing on another.
    """
    diffusers = require_diffusers()
    # Keep what DDIMInverseScheduler understands: a PNDM config (SD 1.5) also carries
    # skip_prk_steps etc., which would only produce a warning.
    accepted = set(inspect.signature(diffusers.DDIMInverseScheduler.__init__).parameters)
    cfg = {k: v for k, v in dict(config).items() if k in accepted}
    cfg.update(timestep_spacing="leading", steps_offset=1)
    scheduler = diffusers.DDIMInverseScheduler.from_config(cfg)
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


def inversion_timesteps(scheduler: Any, timestep: int) -> list[int]:
    """The inverse schedule's timesteps up to and including ``timestep`` (which must be on it)."""
    steps = [int(t) for t in scheduler.timesteps]
    if timestep not in steps:
        raise ValueError(
            f"timestep {timestep} is not on the {len(steps)}-step inversion schedule "
            f"({steps[0]}, {steps[1]}, ..., {steps[-1]})"
        )
    return steps[: steps.index(timestep) + 1]


def block_channels(unet_config: Any, block: str) -> int:
    """Output channels of ``block`` (``up_blocks.N``, ``down_blocks.N`` or ``mid_block``)."""
    channels = list(unet_config.block_out_channels)
    name, _, index = block.partition(".")
    if name == "mid_block" and not index:
        return channels[-1]
    if name in ("up_blocks", "down_blocks") and index.isdigit() and int(index) < len(channels):
        i = int(index)
        return channels[::-1][i] if name == "up_blocks" else channels[i]
    raise ValueError(
        f"block {block!r} is not a UNet block; use up_blocks.N, down_blocks.N (N < "
        f"{len(channels)}) or mid_block"
    )
