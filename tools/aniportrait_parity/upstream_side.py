"""Upstream half of the AniPortrait parity check: run the ORIGINAL code on random weights.

Runs inside the separate upstream environment (torch 2.0.1, diffusers 0.24; see README.md),
with an export of upstream's repository on ``sys.path`` (its modules are imported as
``src.models...``, as its scripts do).  Nothing of upstream is copied here.  This script

* builds upstream's ``PoseGuider`` (``noise_latent_channels=320, use_ca=True``), reference UNet
  (its head-less ``UNet2DConditionModel`` at SD 1.5's configuration) and denoising UNet
  (``UNet3DConditionModel`` with the configuration and motion-module settings of
  ``configs/inference/inference_v2.yaml``), all full size, with random weights everywhere
  (``upstream_problem.py``), and writes them in the released ``.pth`` layout;
* runs the PoseGuider alone (running statistics, then batch statistics as released), the
  denoising UNet alone (no reference attention), and one denoising step through upstream's own
  ``Pose2VideoPipeline.__call__`` (``upstream_harness.py``: stand-in VAE and CLIP, one
  timestep kept), recording the reference-attention banks and every intermediate;
* runs the scripts' DDIM scheduler over all 25 timesteps on the step's guided prediction.

It writes, under ``--exchange``: ``pose_guider.pth``, ``reference_unet.pth``,
``denoising_unet.pth`` (without the motion modules, as released) and ``motion_module.pth``,
``inputs.safetensors``, ``outputs.safetensors`` and ``meta.json``.  Everything is float32 on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# This script's own folder is on sys.path when it is run as a script.
from upstream_harness import Recorder, one_step_scheduler, run_pipeline_step
from upstream_problem import (
    FRAMES,
    GUIDANCE_SCALE,
    HEIGHT,
    INFERENCE_CONFIG,
    NUM_INFERENCE_STEPS,
    PIPELINE_SEED,
    SD15_UNET_CONFIG,
    SEED,
    STEP_INDEX,
    WIDTH,
    calibrate_batchnorm_,
    make_inputs,
    randomize_,
)

MOTION_KEY = "motion_module"


def _pil(array: torch.Tensor) -> Any:
    from PIL import Image

    return Image.fromarray(array.numpy())


def _stamp(info: dict[str, Any], label: str, started: float) -> None:
    info[f"{label}_seconds"] = round(time.perf_counter() - started, 1)
    print(f"  {label}: {info[f'{label}_seconds']} s", flush=True)


def build_pose_guider(
    exchange: Path, inputs: dict[str, torch.Tensor], out: dict[str, torch.Tensor], info: dict
) -> torch.nn.Module:
    """Upstream's PoseGuider, random, BatchNorm statistics calibrated; saved; run both ways."""
    from diffusers.image_processor import VaeImageProcessor
    from src.models.pose_guider import PoseGuider

    started = time.perf_counter()
    guider = PoseGuider(noise_latent_channels=320, use_ca=True)  # as in scripts/vid2vid.py
    randomize_(guider, SEED + 1)
    # The pipeline's pose preprocessing (``cond_image_processor``), on PIL images as the
    # diffusers-format fork and training feed them.
    processor = VaeImageProcessor(vae_scale_factor=8, do_convert_rgb=True, do_normalize=True)

    def network_input(images: torch.Tensor) -> torch.Tensor:  # [F, H, W, 3] -> [1, 3, F, H, W]
        frames = [processor.preprocess(_pil(i), height=HEIGHT, width=WIDTH) for i in images]
        return torch.stack([f[0] for f in frames], dim=1)[None]

    pose = network_input(inputs["pose_images"])
    ref_pose = processor.preprocess(_pil(inputs["ref_pose_image"]), height=HEIGHT, width=WIDTH)
    calibrate_batchnorm_(guider, network_input(inputs["calibration_pose_images"]), ref_pose)
    torch.save(guider.state_dict(), exchange / "pose_guider.pth")  # before any train-mode call
    out["pose_input"] = pose[0].transpose(0, 1)  # [F, 3, H, W]
    # The official scripts hand uint8 arrays to the same processor, which does not scale them.
    uint8_path = [processor.preprocess(i.numpy(), height=HEIGHT, width=WIDTH)[0] for i in
                  inputs["pose_images"]]  # fmt: skip
    out["pose_input_uint8_path"] = torch.stack(uint8_path)
    with torch.no_grad():
        guider.eval()
        for k, feature in enumerate(guider(pose, ref_pose)):
            out[f"pose_eval_{k}"] = feature[0].transpose(0, 1)  # [F, C, h, w]
        guider.train()  # as the scripts leave it: BatchNorm with the batch's statistics
        for k, feature in enumerate(guider(pose, ref_pose)):
            out[f"pose_train_{k}"] = feature[0].transpose(0, 1)
    info["pose_guider_parameters"] = sum(p.numel() for p in guider.parameters())
    info["pose_guider_tensors"] = len(guider.state_dict())
    _stamp(info, "pose_guider", started)
    return guider


def build_unets(root: Path, exchange: Path, info: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Upstream's reference and denoising UNets, random, saved as the release's files."""
    import yaml
    from src.models.unet_2d_condition import UNet2DConditionModel
    from src.models.unet_3d import UNet3DConditionModel

    started = time.perf_counter()
    reference = UNet2DConditionModel(**SD15_UNET_CONFIG)
    randomize_(reference, SEED + 2)
    torch.save(reference.state_dict(), exchange / "reference_unet.pth")
    info["reference_unet_parameters"] = sum(p.numel() for p in reference.parameters())
    info["reference_unet_tensors"] = len(reference.state_dict())
    _stamp(info, "reference_unet", started)

    # unet_3d.py, UNet3DConditionModel.from_pretrained_2d, lines 599-625: SD 1.5's config with
    # the 3D block types, then ``from_config(config, **unet_additional_kwargs)``.
    started = time.perf_counter()
    infer = yaml.safe_load((root / INFERENCE_CONFIG).read_text())
    config = dict(SD15_UNET_CONFIG, _class_name=UNet3DConditionModel.__name__)
    config["down_block_types"] = ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"]
    config["up_block_types"] = ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3
    config["mid_block_type"] = "UNetMidBlock3DCrossAttn"
    denoising = UNet3DConditionModel.from_config(config, **infer["unet_additional_kwargs"])
    randomize_(denoising, SEED + 3)
    state = denoising.state_dict()
    torch.save({k: v for k, v in state.items() if MOTION_KEY not in k},
               exchange / "denoising_unet.pth")  # fmt: skip
    torch.save({k: v for k, v in state.items() if MOTION_KEY in k}, exchange / "motion_module.pth")
    info["denoising_unet_parameters"] = sum(p.numel() for p in denoising.parameters())
    info["denoising_unet_tensors"] = len(state)
    info["motion_module_tensors"] = sum(MOTION_KEY in k for k in state)
    info["inference_config"] = infer
    _stamp(info, "denoising_unet", started)
    return reference, denoising


def run_unet_alone(
    denoising: torch.nn.Module, inputs: dict[str, torch.Tensor], out: dict[str, torch.Tensor],
    timestep: torch.Tensor, info: dict,
) -> None:  # fmt: skip
    """The 3D UNet alone (before the pipeline hooks it for reference attention): batch 1, the
    conditional context, the PoseGuider's batch-statistics features."""
    started = time.perf_counter()
    features = [out[f"pose_train_{k}"].transpose(0, 1)[None] for k in range(5)]
    with torch.no_grad():
        out["unet_alone"] = denoising(
            inputs["unet_latents"], timestep,
            encoder_hidden_states=inputs["clip_image_embeds"][:, None],
            pose_cond_fea=features, return_dict=False,
        )[0]  # fmt: skip
    _stamp(info, "unet_alone", started)


def run_step(
    modules: dict[str, torch.nn.Module], inputs: dict[str, torch.Tensor],
    out: dict[str, torch.Tensor], scheduler_kwargs: dict[str, Any], info: dict,
) -> None:  # fmt: skip
    """One denoising step through upstream's ``Pose2VideoPipeline``, then the scheduler."""
    from diffusers import DDIMScheduler
    from src.pipelines.pipeline_pose2vid_long import Pose2VideoPipeline

    started = time.perf_counter()
    recorder = Recorder()
    scheduler = one_step_scheduler(scheduler_kwargs, STEP_INDEX, recorder)
    pipe_inputs = {
        "ref_image": _pil(inputs["ref_image"]),
        "pose_images": [_pil(i) for i in inputs["pose_images"]],
        "ref_pose_image": _pil(inputs["ref_pose_image"]),
        "ref_latent_mean": inputs["ref_latent_mean"],
        "clip_image_embeds": inputs["clip_image_embeds"],
    }
    settings = {
        "width": WIDTH, "height": HEIGHT, "video_length": FRAMES,
        "num_inference_steps": NUM_INFERENCE_STEPS, "guidance_scale": GUIDANCE_SCALE,
        "seed": PIPELINE_SEED,
    }  # fmt: skip
    videos = run_pipeline_step(Pose2VideoPipeline, modules, scheduler, pipe_inputs, settings,
                               recorder)  # fmt: skip
    rec = recorder.tensors
    if not torch.equal(videos, rec["step_prev_sample"]):
        raise AssertionError("the pipeline's output is not the step's prev_sample")
    out.update(rec)
    _stamp(info, "pipeline_step", started)

    # The scripts' scheduler on every timestep of the schedule, same guided prediction and
    # sample: the update rule at t = 999 (zero terminal SNR), mid-schedule and at the end.
    reference = DDIMScheduler(**scheduler_kwargs)
    reference.set_timesteps(NUM_INFERENCE_STEPS)
    out["all_timesteps"] = reference.timesteps.float()
    out["all_steps_prev_sample"] = torch.stack([
        reference.step(rec["step_guided"], t, rec["init_latents"], eta=0.0).prev_sample
        for t in reference.timesteps
    ])  # fmt: skip
    out["alphas_cumprod"] = reference.alphas_cumprod.float()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="AniPortrait checkout")
    parser.add_argument("--exchange", type=Path, required=True, help="folder for weights/results")
    parser.add_argument("--commit", default="", help="upstream commit, recorded in meta.json")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    root = args.upstream.resolve()
    if not (root / "src" / "pipelines" / "pipeline_pose2vid_long.py").is_file():
        print(f"upstream tree not found at {root}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    sys.path.insert(0, str(root))
    import diffusers
    import einops
    import yaml

    exchange = args.exchange.resolve()
    exchange.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    started = time.perf_counter()
    inputs = make_inputs(torch.Generator().manual_seed(SEED))
    out: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {
        "upstream": str(root),
        "upstream_commit": args.commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "einops": einops.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "height": HEIGHT,
        "width": WIDTH,
        "frames": FRAMES,
        "step_index": STEP_INDEX,
        "num_inference_steps": NUM_INFERENCE_STEPS,
        "guidance_scale": GUIDANCE_SCALE,
        "seed": SEED,
        "sd15_unet_config": SD15_UNET_CONFIG,
    }
    scheduler_kwargs = yaml.safe_load((root / INFERENCE_CONFIG).read_text())[
        "noise_scheduler_kwargs"
    ]
    meta["scheduler_config"] = scheduler_kwargs
    print("PoseGuider ...", flush=True)
    guider = build_pose_guider(exchange, inputs, out, meta)
    print("UNets ...", flush=True)
    reference, denoising = build_unets(root, exchange, meta)
    from diffusers import DDIMScheduler

    probe = DDIMScheduler(**scheduler_kwargs)
    probe.set_timesteps(NUM_INFERENCE_STEPS)
    run_unet_alone(denoising, inputs, out, probe.timesteps[STEP_INDEX], meta)
    print("one step of Pose2VideoPipeline ...", flush=True)
    modules = {"pose_guider": guider, "reference_unet": reference, "denoising_unet": denoising}
    run_step(modules, inputs, out, scheduler_kwargs, meta)

    save_file({k: v.contiguous() for k, v in inputs.items()}, str(exchange / "inputs.safetensors"))
    save_file({k: v.contiguous() for k, v in out.items()}, str(exchange / "outputs.safetensors"))
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    meta["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    (exchange / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"upstream side done in {meta['total_seconds']} s (peak RSS {meta['peak_rss_gb']} GB); "
          f"results in {exchange}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
