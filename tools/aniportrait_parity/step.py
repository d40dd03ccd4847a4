"""The scheduler and one-denoising-step rows of the AniPortrait parity check (faceshot's side).

Imported by ``our_side.py``.  Upstream's step is its own ``Pose2VideoPipeline.__call__`` run
for one timestep (``upstream_harness.py``).  faceshot's goes through the plugin's own sampling
code: ``AniPortraitPipeline._predictor`` (pose images -> ``to_network`` -> PoseGuider -> 3D
UNet) inside ``sampling.sample_windows`` (one window, a one-step slice of the release's
schedule, guidance 3.5, ``ddim_step``), with the reference attention written and read as
``AniPortraitPipeline.generate`` does (``ReferenceAttention`` at the settings' float16 bank,
``write`` at t = 0 with contexts ``[zeros, CLIP]``, ``reading(cfg_halves=True)``).  Only the
drawing of the pose images is replaced: the predictor draws each window's images from
landmarks, and is handed upstream's drawings once it has asked for the window's frames at the
latents' size (upstream draws from mediapipe meshes; the network input has its own rows).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from parity_common import Table


def compare_schedule(table: Table, schedule: Any, up: dict[str, torch.Tensor]) -> None:
    """The 25 timesteps and the DDIM update (``sampling.ddim_step``) at each of them, on
    upstream's guided prediction and initial latents, against the scripts' DDIMScheduler."""
    from faceshot_aniportrait.sampling import ddim_step

    table.add(
        "scheduler", "timesteps (25)", schedule.timesteps.float(), up["all_timesteps"], "exact"
    )
    alphas = up["alphas_cumprod"][schedule.timesteps.long()]
    table.add("scheduler", "alphas at the timesteps", schedule.alphas, alphas)
    steps = [
        ddim_step(
            up["init_latents"],
            up["step_guided"],
            schedule.alphas[i],
            schedule.alphas_prev[i],
            schedule.prediction_type,
        )
        for i in range(schedule.steps)
    ]
    # Step 0 starts at zero terminal SNR (alpha = 0), the last ends at the final alpha (1).
    table.add("scheduler", "DDIM update, t=999", steps[0], up["all_steps_prev_sample"][0])
    table.add("scheduler", "DDIM update, all 25 t", torch.stack(steps), up["all_steps_prev_sample"])


def compare_step(
    table: Table,
    models: dict[str, Any],
    meta: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    up: dict[str, torch.Tensor],
    timings: dict[str, float],
) -> None:
    import faceshot_aniportrait.pipeline as pipeline_module
    import faceshot_aniportrait.sampling as sampling_module
    from faceshot_aniportrait.pipeline import (
        LATENT_SCALE,
        AniPortraitModels,
        AniPortraitPipeline,
        GenerationSettings,
    )
    from faceshot_aniportrait.reference_attention import ReferenceAttention
    from faceshot_aniportrait.sampling import Schedule, make_scheduler, sample_windows

    cpu = torch.device("cpu")
    frames, height, width = meta["frames"], meta["height"], meta["width"]
    settings = GenerationSettings()
    if settings.guidance != meta["guidance_scale"] or settings.steps != meta["num_inference_steps"]:
        raise SystemExit(f"the default settings ({settings}) are not the scripts' (25, 3.5)")
    m = AniPortraitModels(
        reference_unet=models["reference_unet"],
        denoising_unet=models["denoising_unet"],
        pose_guider=models["pose_guider"],
        vae=None,
        image_encoder=None,
        scheduler=make_scheduler(),
        device=cpu,
        dtype=torch.float32,
    )
    pipeline = AniPortraitPipeline(m)

    full = Schedule.from_scheduler(m.scheduler, settings.steps, cpu)
    compare_schedule(table, full, up)
    i = meta["step_index"]
    one = Schedule(
        timesteps=full.timesteps[i : i + 1],
        alphas=full.alphas[i : i + 1],
        alphas_prev=full.alphas_prev[i : i + 1],
        init_noise_sigma=full.init_noise_sigma,
        prediction_type=full.prediction_type,
    )
    table.add("step", "timestep", one.timesteps.float(), up["step_timestep"], "exact")

    # generate(): the initial noise from a CPU generator seeded with the seed (the scripts' 42).
    noise = torch.randn(
        (1, 4, frames, height // 8, width // 8),
        generator=torch.Generator(device="cpu").manual_seed(42),
    )
    table.add(
        "step", "initial noise, seed 42", noise * full.init_noise_sigma, up["init_latents"], "exact"
    )
    # generate(): the contexts and the reference latents (VAE mean x LATENT_SCALE).
    embedding = inputs["clip_image_embeds"][:, None]
    contexts = torch.cat([torch.zeros_like(embedding), embedding])
    ref_latents = inputs["ref_latent_mean"] * LATENT_SCALE
    table.add("step", "reference latents", ref_latents, up["ref_latents"][:1], "exact")
    table.add("step", "contexts [0, CLIP]", contexts, up["ref_context"], "exact")

    # The landmark sequence only tells the drawing stand-in which frames were asked for.
    sequence = np.broadcast_to(
        np.arange(frames, dtype=np.float32)[:, None, None], (frames, 68, 2)
    ).copy()
    seen: dict[str, Any] = {}

    def upstream_drawings(points: Any, size: tuple[int, int], *args: Any) -> np.ndarray:
        asked = np.asarray(points)[:, 0, 0].astype(int).tolist()
        if asked != list(range(frames)) or tuple(size) != (width, height):
            raise SystemExit(f"the predictor drew frames {asked} at {size}, not the window's")
        return inputs["pose_images"].numpy().copy()

    def recording_ddim_step(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen["guided"] = args[1]
        return original_step(*args, **kwargs)

    predict = pipeline._predictor(contexts, sequence, settings)

    def recording_predict(x: torch.Tensor, window: list[int], t: torch.Tensor) -> torch.Tensor:
        seen["model_input"], seen["pred"] = x, predict(x, window, t)
        return seen["pred"]

    hook = m.pose_guider.register_forward_hook(lambda _m, _a, out: seen.update(features=out))
    original_step = sampling_module.ddim_step
    saved_drawing = pipeline_module.pose_images
    pipeline_module.pose_images = upstream_drawings
    sampling_module.ddim_step = recording_ddim_step
    store = torch.float16 if settings.reference_float16 else None
    attention = ReferenceAttention(m.reference_unet, m.denoising_unet, store_dtype=store)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            attention.write(ref_latents, contexts, timestep=0)
            with attention.reading(cfg_halves=True):
                prev = sample_windows(
                    up["init_latents"],
                    one,
                    recording_predict,
                    windows=[list(range(frames))],
                    guidance=settings.guidance,
                )
    finally:
        attention.clear()
        hook.remove()
        pipeline_module.pose_images = saved_drawing
        sampling_module.ddim_step = original_step
    timings["step (write + guider + unet + ddim)"] = round(time.perf_counter() - started, 1)

    for k, feature in enumerate(seen["features"]):
        video = feature.reshape(1, frames, *feature.shape[1:]).transpose(1, 2)
        table.add(
            "step", f"pose feature {k} (2 halves)", torch.cat([video, video]), up[f"pipe_pose_{k}"]
        )
    table.add("step", "UNet input (2 halves)", seen["model_input"], up["unet_input"], "exact")
    table.add("step", "UNet output, reading bank", seen["pred"], up["unet_pred"], "deep")
    table.add(
        "step", f"guided (CFG {settings.guidance:g})", seen["guided"], up["step_guided"], "deep"
    )
    table.add("step", "DDIM prev_sample", prev, up["step_prev_sample"], "deep")
