"""Windowed Euler sampling: any number of frames through a model that sees 25 at a time.

At every denoising step each window (:func:`faceshot_mofa.windowing.frame_windows`) is denoised
once from the current latents, and a frame's new latent is the average of what the windows
holding it produced.  Frame 0 is in every window but is taken from the first only, as upstream
does, so it stays anchored to the reference.

The Euler update is written out here instead of calling ``scheduler.step``: diffusers' scheduler
keeps a private step counter that upstream winds back by hand for every window but the last;
the update itself is three lines and is checked against ``scheduler.step`` in the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from faceshot_core.progress import ProgressSink, StageReporter

#: ``predict(model_input, frames, timestep, guidance) -> model output`` for one window: the
#: latents of ``frames`` (already scaled for the model), the scheduler's timestep and the
#: per-frame guidance scales ``[len(frames)]``.
Predictor = Callable[[torch.Tensor, list[int], torch.Tensor, torch.Tensor], torch.Tensor]


def guidance_scales(
    frames: int, low: float, high: float, device: torch.device | None = None
) -> torch.Tensor:
    """Per-frame guidance of one window, rising linearly from ``low`` (frame 0) to ``high``."""
    return torch.linspace(low, high, frames, device=device, dtype=torch.float32)


def predicted_original(
    sample: torch.Tensor, output: torch.Tensor, sigma: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The clean sample implied by the model's output at noise level ``sigma``."""
    if prediction_type == "v_prediction":
        return output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    if prediction_type == "epsilon":
        return sample - sigma * output
    if prediction_type == "sample":
        return output
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def euler_step(
    sample: torch.Tensor,
    output: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """One deterministic Euler step from ``sigma`` to ``sigma_next`` (no churn), in float32."""
    x = sample.to(torch.float32)
    original = predicted_original(x, output.to(torch.float32), sigma, prediction_type)
    derivative = (x - original) / sigma
    return (x + derivative * (sigma_next - sigma)).to(sample.dtype)


@dataclass(frozen=True)
class Schedule:
    """The noise levels of a run: ``timesteps[i]`` goes from ``sigmas[i]`` to ``sigmas[i + 1]``."""

    timesteps: torch.Tensor  # [steps], what the model is told
    sigmas: torch.Tensor  # [steps + 1], float32, ending at 0
    init_noise_sigma: float
    prediction_type: str

    @classmethod
    def from_scheduler(cls, scheduler: object, steps: int, device: torch.device) -> Schedule:
        """Read the schedule of a diffusers Euler scheduler set to ``steps`` steps."""
        scheduler.set_timesteps(steps, device=device)  # type: ignore[attr-defined]
        sigmas = scheduler.sigmas.to(device=device, dtype=torch.float32)  # type: ignore[attr-defined]
        return cls(
            timesteps=scheduler.timesteps.to(device),  # type: ignore[attr-defined]
            sigmas=sigmas,
            init_noise_sigma=float(scheduler.init_noise_sigma),  # type: ignore[attr-defined]
            prediction_type=str(scheduler.config.prediction_type),  # type: ignore[attr-defined]
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
    guidance: tuple[float, float] = (1.0, 3.0),
    progress: ProgressSink | None = None,
) -> torch.Tensor:
    """Denoise ``latents`` ``[1, T, C, h, w]`` (already scaled by the initial noise sigma).

    At each step every window is predicted and stepped from the same latents; each frame's
    next latent is the mean over the windows holding it (frame 0: the first window's).
    Progress: stage ``denoising``, one unit per window and step.
    """
    frames = latents.shape[1]
    counts = torch.zeros(frames, dtype=torch.float32, device=latents.device)
    for k, window in enumerate(windows):
        counts[window if k == 0 else window[1:]] += 1
    if bool((counts == 0).any()):
        raise ValueError("the windows leave some frames out")
    reporter = StageReporter(progress, "denoising", schedule.steps * len(windows), "window steps")
    divisor = counts.reshape(1, frames, 1, 1, 1)
    for i in range(schedule.steps):
        t, sigma, sigma_next = schedule.timesteps[i], schedule.sigmas[i], schedule.sigmas[i + 1]
        total = torch.zeros(latents.shape, dtype=torch.float32, device=latents.device)
        for k, window in enumerate(windows):
            index = torch.as_tensor(window, device=latents.device)
            current = latents.index_select(1, index)
            model_input = (current.to(torch.float32) / (sigma**2 + 1) ** 0.5).to(latents.dtype)
            scales = guidance_scales(len(window), *guidance, device=latents.device)
            output = predict(model_input, list(window), t, scales)
            stepped = euler_step(current, output, sigma, sigma_next, schedule.prediction_type)
            keep = index if k == 0 else index[1:]
            total.index_add_(1, keep, (stepped if k == 0 else stepped[:, 1:]).to(torch.float32))
            reporter.step()
        latents = (total / divisor).to(latents.dtype)
    return latents
