"""Windowed Euler sampling: the window schedule, the Euler update, overlap averaging."""

from __future__ import annotations

import pytest
import torch
from diffusers import EulerDiscreteScheduler
from faceshot_mofa.sampling import Schedule, euler_step, guidance_scales, sample_windows
from faceshot_mofa.testing import SCHEDULER_CONFIG
from faceshot_mofa.windowing import frame_windows


def _upstream_views(frames: int, window: int = 25, stride: int = 12) -> list[tuple[int, int]]:
    """Upstream's window list, restated from its facts (including its duplicated tail)."""
    count = (frames - window) // stride + 1
    views = [(1 + i * stride, i * stride + window) for i in range(count)]
    return [*views, (frames - window + 1, frames)]


@pytest.mark.parametrize("frames", [26, 37, 40, 49, 50, 100, 125, 251])
def test_windows_are_upstreams_without_the_repeated_tail(frames: int) -> None:
    ours = frame_windows(frames)
    upstream = {tuple([0, *range(a, b)]) for a, b in _upstream_views(frames)}
    assert {tuple(w) for w in ours} == upstream  # the same windows ...
    assert len(ours) == len(upstream)  # ... each once (upstream repeats one when (T-25) % 12 == 0)
    assert all(len(w) == 25 and w[0] == 0 for w in ours)
    covered = sorted({f for w in ours for f in w})
    assert covered == list(range(frames))


@pytest.mark.parametrize("frames", [2, 3, 24, 25])
def test_short_clips_are_one_window(frames: int) -> None:
    assert frame_windows(frames) == [list(range(frames))]


def test_too_short_or_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 frames"):
        frame_windows(1)
    with pytest.raises(ValueError, match="stride"):
        frame_windows(30, window=25, stride=25)


def test_guidance_rises_from_the_first_frame() -> None:
    g = guidance_scales(25, 1.0, 3.0)
    assert g[0] == 1.0 and g[-1] == 3.0 and bool((g.diff() > 0).all())


def _schedule(steps: int) -> tuple[EulerDiscreteScheduler, Schedule]:
    scheduler = EulerDiscreteScheduler(**SCHEDULER_CONFIG)
    return scheduler, Schedule.from_scheduler(scheduler, steps, torch.device("cpu"))


@pytest.mark.parametrize(
    "changes",
    [{}, {"prediction_type": "epsilon", "timestep_type": "discrete", "use_karras_sigmas": False}],
)
def test_euler_step_equals_the_schedulers(changes: dict) -> None:
    scheduler = EulerDiscreteScheduler(**{**SCHEDULER_CONFIG, **changes})
    prediction = scheduler.config.prediction_type
    scheduler.set_timesteps(6)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 5, 5) * scheduler.init_noise_sigma
    ours = x.clone()
    for i, t in enumerate(scheduler.timesteps):
        out = torch.randn_like(x)
        x = scheduler.step(out, t, x).prev_sample
        ours = euler_step(ours, out, scheduler.sigmas[i], scheduler.sigmas[i + 1], prediction)
        torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)


def _model(x: torch.Tensor, frames: list[int], t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in model whose output depends on the frames, time and input."""
    index = torch.tensor(frames, dtype=torch.float32).reshape(1, -1, 1, 1, 1)
    return 0.5 * x + 0.01 * index * torch.cos(t) + 0.1 * g.reshape(1, -1, 1, 1, 1)


def test_one_window_is_plain_euler_sampling() -> None:
    scheduler, schedule = _schedule(5)
    torch.manual_seed(1)
    start = torch.randn(1, 7, 4, 3, 3) * schedule.init_noise_sigma
    ours = sample_windows(start, schedule, _model, windows=[list(range(7))])
    x = start.clone()
    g = guidance_scales(7, 1.0, 3.0)
    for t in scheduler.timesteps:
        out = _model(scheduler.scale_model_input(x, t), list(range(7)), t, g)
        x = scheduler.step(out, t, x).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)


def test_overlaps_are_averaged_and_frame_zero_comes_from_the_first_window() -> None:
    _, schedule = _schedule(1)
    torch.manual_seed(2)
    start = torch.randn(1, 40, 2, 2, 2) * schedule.init_noise_sigma
    windows = frame_windows(40)
    assert len(windows) == 3  # longer than two windows
    seen: list[list[int]] = []

    def model(x: torch.Tensor, frames: list[int], t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        seen.append(frames)
        return _model(x, frames, t, g) * (1 + len(seen))  # each window predicts differently

    events: list = []
    got = sample_windows(start, schedule, model, windows=windows, progress=events.append)
    assert seen == windows  # each window once per step
    expected = torch.zeros_like(start)
    count = torch.zeros(40)
    sigma, nxt = schedule.sigmas[0], schedule.sigmas[1]
    for k, w in enumerate(windows):
        x = start[:, w]
        scales = guidance_scales(len(w), 1.0, 3.0)
        out = _model(x / (sigma**2 + 1) ** 0.5, w, schedule.timesteps[0], scales) * (2 + k)
        stepped = euler_step(x, out, sigma, nxt, schedule.prediction_type)
        keep = w if k == 0 else w[1:]
        expected[:, keep] += stepped if k == 0 else stepped[:, 1:]
        count[keep] += 1
    assert count[0] == 1 and count.max() == 3  # frame 0 once; overlaps two or three times
    torch.testing.assert_close(got, expected / count.reshape(1, -1, 1, 1, 1))
    assert [e.done for e in events] == [1, 2, 3] and events[-1].total == 3
