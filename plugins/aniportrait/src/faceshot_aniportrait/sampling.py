"""Windowed DDIM sampling with classifier-free guidance, as AniPortrait's long-video pipeline does.

At every step each context window (:func:`faceshot_aniportrait.windowing.context_windows`) is
denoised once from the current latents - both guidance branches in one batch - and each frame's
model output is the average over the windows that hold it
(:class:`faceshot_backends.windows.WindowAverage`).  Guidance is applied to those averages,
then one DDIM step moves every frame: predictions are averaged *before* guidance and before the
step, which is upstream's order (MOFA averages stepped latents instead).

The scheduler is the release's: DDIM, linear betas 0.00085-0.012 rescaled to zero terminal SNR,
``v_prediction``, trailing timesteps (999, 959, ..., 39 for 25 steps; ``steps_offset`` has no
effect there), eta 0 (no noise is added while stepping, so the seed acts only through the
initial latents).  :class:`Schedule` reads the timesteps and cumulative alphas from diffusers'
``DDIMScheduler`` configured so (:func:`make_scheduler`); the step itself is written out in
float32 (:func:`ddim_step`, checked against ``DDIMScheduler.step`` in the tests) so that no
scheduler state is shared between windows and the latents never round to half precision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from faceshot_backends.windows import WindowAverage
from faceshot_core.progress import ProgressSink, StageReporter

#: The release's ``noise_scheduler_kwargs`` (``configs/inference/inference_v2.yaml``) for
#: diffusers' ``DDIMScheduler``; everything else is diffusers' default (1000 training steps,
#: ``set_alpha_to_one``, no thresholding).
SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
}

#: ``predict(model_input, frames, timestep) -> model output`` for one window: the latents of
#: ``frames`` ``[B, 4, len(frames), h, w]`` in float32 (``B`` = 2 under guidance: the
#: unconditional then the conditional copy), the scheduler's timestep; returns the same shape.
Predictor = Callable[[torch.Tensor, list[int], torch.Tensor], torch.Tensor]


def make_scheduler() -> Any:
    """A diffusers ``DDIMScheduler`` with the release's settings (:data:`SCHEDULER_CONFIG`)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_CONFIG)


def ddim_step(
    sample: torch.Tensor,
    output: torch.Tensor,
    alpha: torch.Tensor,
    alpha_prev: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """One deterministic DDIM step (eta 0) from cumulative alpha ``alpha`` to ``alpha_prev``.

    Computed in float32: the clean sample and the noise implied by ``output`` are recombined at
    the next noise level.  At zero terminal SNR (``alpha`` = 0 on the first step) a
    v-prediction still defines both, where an epsilon prediction would not.
    """
    x = sample.to(torch.float32)
    out = output.to(torch.float32)
    root, rest = alpha.sqrt(), (1 - alpha).sqrt()
    if prediction_type == "v_prediction":
        original = root * x - rest * out
        noise = root * out + rest * x
    elif prediction_type == "epsilon":
        original = (x - rest * out) / root
        noise = out
    else:
        raise ValueError(f"unsupported prediction type {prediction_type!r}")
    return alpha_prev.sqrt() * original + (1 - alpha_prev).sqrt() * noise


@dataclass(frozen=True)
class Schedule:
    """The noise levels of a run: step ``i`` goes from ``alphas[i]`` to ``alphas_prev[i]``."""

    timesteps: torch.Tensor  # [steps], what the model is told
    alphas: torch.Tensor  # [steps], float32 cumulative alphas at the timesteps
    alphas_prev: torch.Tensor  # [steps], float32, the last one the final alpha (1)
    init_noise_sigma: float
    prediction_type: str

    @classmethod
    def from_scheduler(cls, scheduler: Any, steps: int, device: torch.device) -> Schedule:
        """Read the schedule of a diffusers DDIM scheduler set to ``steps`` steps."""
        scheduler.set_timesteps(steps, device=device)
        timesteps = scheduler.timesteps.to(device)
        cumulative = scheduler.alphas_cumprod.to(torch.float32)
        final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float32)
        jump = scheduler.config.num_train_timesteps // steps
        previous = [int(t) - jump for t in timesteps.tolist()]
        alphas_prev = torch.stack([cumulative[p] if p >= 0 else final for p in previous])
        return cls(
            timesteps=timesteps,
            alphas=cumulative[timesteps.cpu().long()].to(device),
            alphas_prev=alphas_prev.to(device),
            init_noise_sigma=float(scheduler.init_noise_sigma),
            prediction_type=str(scheduler.config.prediction_type),
        )

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])


def sample_windows(
    latents: torch.Tensor,
    schedule: Schedule,
    predict: Predictor,
    *,
    windows: Sequence[list[int]],
    guidance: float | None = 3.5,
    progress: ProgressSink | None = None,
) -> torch.Tensor:
    """Denoise ``latents`` ``[1, 4, T, h, w]`` (float32, already scaled by the initial sigma).

    ``guidance``: the classifier-free guidance scale (the model sees both branches, the
    unconditional first), or ``None`` for one unguided branch.  Progress: stage
    ``denoising``, one unit per window and step.  Returns float32 latents.
    """
    frames = latents.shape[2]
    left_out = set(range(frames)).difference(*windows)
    if left_out:
        raise ValueError(f"the windows leave frames {sorted(left_out)[:8]} out")
    reporter = StageReporter(progress, "denoising", schedule.steps * len(windows), "window steps")
    copies = 1 if guidance is None else 2
    x = latents.to(torch.float32)
    for i in range(schedule.steps):
        t = schedule.timesteps[i]
        average = WindowAverage(frames, axis=2)
        for window in windows:
            index = torch.as_tensor(window, device=x.device)
            model_input = x.index_select(2, index).expand(copies, -1, -1, -1, -1)
            average.add(window, predict(model_input, list(window), t))
            reporter.step()
        output = average.mean()
        if guidance is not None:
            uncond, cond = output.chunk(2)
            output = uncond + guidance * (cond - uncond)
        x = ddim_step(x, output, schedule.alphas[i], schedule.alphas_prev[i],
                      schedule.prediction_type)  # fmt: skip
    return x
