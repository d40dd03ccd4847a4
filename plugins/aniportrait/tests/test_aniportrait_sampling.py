"""Windowed DDIM sampling: the release's schedule, the step against diffusers', the windows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from faceshot_aniportrait.configs import CONFIG_FILE, ModelConfigs
from faceshot_aniportrait.sampling import Schedule, ddim_step, make_scheduler, sample_windows
from faceshot_aniportrait.windowing import context_windows

from faceshot_core.checkpoints import CheckpointError


def test_trailing_zero_snr_schedule_as_released() -> None:
    """25 steps: timesteps 999, 959, ..., 39 (steps_offset has no effect with trailing
    spacing), zero SNR at 999, and the last step lands on alpha 1 (a clean sample)."""
    schedule = Schedule.from_scheduler(make_scheduler(), 25, torch.device("cpu"))
    assert schedule.timesteps.tolist() == list(range(999, 0, -40))
    assert float(schedule.alphas[0]) == 0.0
    assert torch.equal(schedule.alphas_prev[:-1], schedule.alphas[1:])
    assert float(schedule.alphas_prev[-1]) == 1.0
    assert schedule.prediction_type == "v_prediction" and schedule.init_noise_sigma == 1.0


@pytest.mark.parametrize("step", [0, 7, 24])
def test_ddim_step_is_diffusers_step_with_eta_0(step: int) -> None:
    scheduler = make_scheduler()
    schedule = Schedule.from_scheduler(scheduler, 25, torch.device("cpu"))
    generator = torch.Generator().manual_seed(step)
    sample, output = torch.randn(2, 1, 4, 3, 8, 8, generator=generator).unbind(0)
    t = schedule.timesteps[step]
    expected = scheduler.step(output, t, sample, eta=0.0).prev_sample
    ours = ddim_step(sample, output, schedule.alphas[step], schedule.alphas_prev[step],
                     schedule.prediction_type)  # fmt: skip
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_window_outputs_are_averaged_per_frame_then_guided_then_stepped() -> None:
    """Each window sees its frames (twice under guidance); each frame's output is the mean
    over the windows holding it, guided, and one DDIM step moves every frame."""
    frames, guidance = 20, 3.5
    windows = context_windows(frames)
    assert windows == [list(range(16)), list(range(4, 20))]
    schedule = Schedule.from_scheduler(make_scheduler(), 2, torch.device("cpu"))
    latents = torch.randn(1, 4, frames, 2, 2, generator=torch.Generator().manual_seed(0))
    seen: list[tuple[list[int], torch.Tensor]] = []

    def predict(model_input: torch.Tensor, window: list[int], t: torch.Tensor) -> torch.Tensor:
        seen.append((window, model_input.clone()))
        k = float(window[0] + 1)  # each window its own constant: k unconditional, 2k conditional
        half = model_input[:1]
        return torch.cat([torch.full_like(half, k), torch.full_like(half, 2 * k)])

    result = sample_windows(latents, schedule, predict, windows=windows, guidance=guidance)
    first_window, first_input = seen[0]
    assert first_window == windows[0] and first_input.shape == (2, 4, 16, 2, 2)
    torch.testing.assert_close(first_input[0], latents[0, :, :16])
    torch.testing.assert_close(first_input[1], latents[0, :, :16])
    uncond = torch.tensor([1.0] * 4 + [3.0] * 12 + [5.0] * 4)  # frames 4-15: mean of 1 and 5
    guided = (uncond + guidance * uncond).reshape(1, 1, frames, 1, 1).expand_as(latents)
    expected = latents
    for i in range(2):
        expected = ddim_step(expected, guided, schedule.alphas[i], schedule.alphas_prev[i],
                             "v_prediction")  # fmt: skip
    torch.testing.assert_close(result, expected)


def test_unguided_sampling_runs_one_branch_and_missing_frames_are_refused() -> None:
    schedule = Schedule.from_scheduler(make_scheduler(), 1, torch.device("cpu"))
    latents = torch.zeros(1, 4, 3, 2, 2)
    batches: list[int] = []

    def predict(model_input: torch.Tensor, window: list[int], t: torch.Tensor) -> torch.Tensor:
        batches.append(model_input.shape[0])
        return torch.zeros_like(model_input)

    sample_windows(latents, schedule, predict, windows=[[0, 1, 2]], guidance=None)
    assert batches == [1]
    with pytest.raises(ValueError, match=r"leave frames \[2\] out"):
        sample_windows(latents, schedule, predict, windows=[[0, 1]], guidance=None)


def test_architecture_file_round_trips_and_must_fit(tmp_path: Path) -> None:
    tiny = ModelConfigs.tiny()
    tiny.check()
    assert ModelConfigs.from_json(tiny.to_json()) == tiny
    assert ModelConfigs.beside(tmp_path) == ModelConfigs.released()  # no file: the release
    (tmp_path / CONFIG_FILE).write_text('{"pose_guider": {"latent_channels": 16}}')
    with pytest.raises(CheckpointError, match="PoseGuider features"):
        ModelConfigs.beside(tmp_path)
