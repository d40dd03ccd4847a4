"""Upstream half of the MOFA-Video parity check: run the ORIGINAL code on random weights.

Runs inside the separate upstream environment (torch 2.0.1, diffusers 0.24; see README.md), with
an export of upstream's ``MOFA-Video-Keypoint/`` folder on ``sys.path``.  Nothing of upstream is
copied here: its modules are imported from the external checkout, and this script only adds

* a CPU stand-in for the CuPy kernel behind upstream's ``softsplat`` and CPU shims while CMP is
  built (``upstream_cpu.py``);
* random weights for every tensor (the zero-initialised convolutions included, so that every
  path contributes) and random inputs (``upstream_problem.py``);
* the few lines of glue that upstream keeps inside ``main()`` of ``mofa_keypoint.py`` and the
  denoising loop of ``pipeline/svdxt_pipeline_ctrlnet_loop.py`` (restated with line references
  below).

It writes, under ``--exchange``: the weights (CMP in the released ``.pth.tar`` format, the adapter
and the UNet through upstream's ``save_pretrained``), ``inputs.safetensors``,
``outputs.safetensors`` and ``meta.json``.  ``our_side.py`` then loads the same weights into
faceshot's modules and compares.  Everything is float32 on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

# This script's own folder is on sys.path when it is run as a script.
from upstream_cpu import SplatSumCPU, cpu_shims, function_from_file, install_cupy_stub
from upstream_problem import (
    ADDED_TIME_IDS,
    CMP_EXPERIMENT,
    CMP_ITER,
    FRAMES,
    HEIGHT,
    NUM_INFERENCE_STEPS,
    SEED,
    STEP_INDEX,
    SVD_SCHEDULER_CONFIG,
    SVD_UNET_CONFIG,
    WIDTH,
    calibrate_batchnorm_,
    make_inputs,
    randomize_,
)


def run_conditioning(
    root: Path, inputs: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Sparse flow (native and 384) and landmark images, with upstream's helpers."""
    import cv2
    from utils.utils import draw_landmarks, get_sparse_flow

    sample_inputs_face = function_from_file(
        root / "mofa_keypoint.py",
        "sample_inputs_face",
        {
            "torch": torch,
            "F": functional,
            "get_sparse_flow": get_sparse_flow,
            "print": lambda *a: None,
        },
    )
    _, sparse, mask, first_384, sparse_384, mask_384 = sample_inputs_face(
        inputs["image"], inputs["landmarks"]
    )
    out["sparse_flow"], out["sparse_mask"] = sparse[0], mask[0].float()
    out["sparse_flow_384"], out["sparse_mask_384"] = sparse_384[0], mask_384[0].float()
    out["image_384"] = first_384[0]

    # mofa_keypoint.py, main(), lines 294-308: landmarks to the 320 canvas, drawn, resized with
    # ``cv2.resize(pose_img, (pw, ph), cv2.INTER_NEAREST)`` (the flag lands in ``dst``).
    ldmk_clip = inputs["landmarks"].numpy().astype(np.float32).copy()
    ldmk_clip[:, :, 0] = ldmk_clip[:, :, 0] / WIDTH * 320
    ldmk_clip[:, :, 1] = ldmk_clip[:, :, 1] / HEIGHT * 320
    pose_imgs = [
        cv2.resize(  # type: ignore[call-overload]  # upstream's call, flag in the dst slot
            draw_landmarks(frame, 320, 320), (WIDTH, HEIGHT), cv2.INTER_NEAREST
        )
        for frame in ldmk_clip
    ]
    images = torch.from_numpy(np.array(pose_imgs)).permute(0, 3, 1, 2).float() / 255.0
    out["landmark_images"] = images
    return {"sample_inputs_face": "mofa_keypoint.py", "draw_landmarks": "utils/utils.py"}


def run_cmp(
    root: Path,
    exchange: Path,
    inputs: dict[str, torch.Tensor],
    out: dict[str, torch.Tensor],
    gen: torch.Generator,
) -> dict[str, Any]:
    """CMP at full size with random weights, built and loaded the way upstream does."""
    import models.cmp.models as cmp_models
    import yaml
    from models.ldmk_ctrlnet import CMP_demo
    from utils.utils import get_cmp_flow

    config_src = root / CMP_EXPERIMENT / "config.yaml"
    config = yaml.safe_load(config_src.read_text())
    module_params = config["model"]["module"]
    net = cmp_models.modules.CMP(module_params)
    randomize_(net, SEED + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.normal_(1.0, 0.1, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
    # Batch-norm statistics measured on the very inputs of the check (the reference at 384 and
    # the sparse flows of every frame), then the head scaled so that the logits have a standard
    # deviation of about 2: the 99-bin softmaxes stay soft and the read-out flow depends on all
    # bins, not on an argmax (with raw random weights the logits reach several hundred).
    calib_image = (out["image_384"] * 2 - 1)[None].repeat(FRAMES - 1, 1, 1, 1)
    calib_sparse = torch.cat([out["sparse_flow_384"], out["sparse_mask_384"]], dim=1)
    calibrate_batchnorm_(net, [(calib_image, calib_sparse)])
    with torch.no_grad():
        spread = float(net(calib_image, calib_sparse).std())
        net.flow_decoder.head.weight /= spread / 2
        net.flow_decoder.head.bias /= spread / 2

    # The released file's format: {"step", "state_dict" with a "module." prefix, "optimizer"}.
    experiment = exchange / "cmp"
    (experiment / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_src, experiment / "config.yaml")
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    ckpt = experiment / "checkpoints" / f"ckpt_iter_{CMP_ITER}.pth.tar"
    torch.save({"step": CMP_ITER, "state_dict": state, "optimizer": {}}, ckpt)

    with cpu_shims():
        cmp = CMP_demo(str(experiment / "config.yaml"), CMP_ITER)
    cmp.eval()
    loaded = cmp.model.model.module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items()), "CMP load"

    with torch.no_grad():
        image = out["image_384"].unsqueeze(0)  # [1, 3, 384, 384] in [0, 1]
        sparse = out["sparse_flow_384"][0:1]
        mask = out["sparse_mask_384"][0:1]
        # CMP_demo.run: the network sees image * 2 - 1 and flow ++ mask.
        out["cmp_logits"] = cmp.model.model(image * 2 - 1, torch.cat([sparse, mask], dim=1))
        out["cmp_flow_384"] = cmp.run(image, sparse, mask)  # [1, 2, 384, 384]

        # mofa_keypoint.py, main(), lines 314-327: CMP per frame at 384, then nearest to the
        # image size with x scaled by W/384 and y by H/384.
        fl = FRAMES - 1
        flow = get_cmp_flow(
            cmp,
            out["image_384"][None, None].repeat(1, fl, 1, 1, 1),
            out["sparse_flow_384"][None],
            out["sparse_mask_384"][None],
        )
        flow = functional.interpolate(flow.flatten(0, 1), (HEIGHT, WIDTH), mode="nearest")
        flow = flow.reshape(1, fl, 2, HEIGHT, WIDTH)
        flow[:, :, 0] *= WIDTH / 384
        flow[:, :, 1] *= HEIGHT / 384
        out["dense_flow"] = flow[0]
    n_params = sum(p.numel() for p in net.parameters())
    return {"cmp_parameters": n_params, "cmp_config": str(CMP_EXPERIMENT)}


def run_step(
    exchange: Path,
    inputs: dict[str, torch.Tensor],
    out: dict[str, torch.Tensor],
    save_weights: bool,
) -> dict[str, Any]:
    """Adapter + UNet + classifier-free guidance + Euler step, as in upstream's loop."""
    from diffusers import EulerDiscreteScheduler
    from models.ldmk_ctrlnet import FlowControlNet
    from models.unet_spatio_temporal_condition_controlnet import (
        UNetSpatioTemporalConditionControlNetModel,
    )
    from utils.scheduling_euler_discrete_karras_fix import (
        EulerDiscreteScheduler as KarrasFixScheduler,
    )

    info: dict[str, Any] = {}
    started = time.perf_counter()
    adapter = FlowControlNet()  # builds its blocks at its defaults whatever it is given
    randomize_(adapter, SEED + 2)
    adapter.eval()
    unet = UNetSpatioTemporalConditionControlNetModel(**SVD_UNET_CONFIG)
    randomize_(unet, SEED + 3)
    unet.eval()
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    info["adapter_parameters"] = sum(p.numel() for p in adapter.parameters())
    info["adapter_tensors"] = len(adapter.state_dict())
    info["unet_parameters"] = sum(p.numel() for p in unet.parameters())

    scheduler = EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)
    scheduler.set_timesteps(NUM_INFERENCE_STEPS)
    t = scheduler.timesteps[STEP_INDEX]
    sigma = scheduler.sigmas[STEP_INDEX]
    latents = inputs["latents"] * sigma  # a latent as noisy as this step expects
    out["timesteps"] = scheduler.timesteps.float()
    out["sigmas"] = scheduler.sigmas.float()

    # svdxt_pipeline_ctrlnet_loop.py, lines 397-437: conditions doubled for guidance, the
    # unconditional image latents zero (``_encode_vae_image``), time ids hard-coded, guidance
    # scale linspace(1, 3, window) per frame (window = FRAMES here).
    reference = (inputs["image"] * 2 - 1).unsqueeze(0)  # image_processor.preprocess
    reference = torch.cat([reference] * 2)
    flow = torch.cat([inputs["flow"]] * 2)
    landmark_images = torch.cat([out["landmark_images"].unsqueeze(0)] * 2)
    image_latents = torch.cat([torch.zeros_like(inputs["image_latents"]), inputs["image_latents"]])
    added_time_ids = torch.tensor([ADDED_TIME_IDS] * 2)
    guidance = torch.linspace(1.0, 3.0, FRAMES).reshape(1, FRAMES, 1, 1, 1)

    # Lines 460-497: one window, one step.
    started = time.perf_counter()
    with torch.no_grad():
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        out["scaled_model_input"] = model_input
        model_input = torch.cat([model_input, image_latents], dim=2)
        down, mid, _, _ = adapter(
            model_input,
            t,
            encoder_hidden_states=inputs["encoder_hidden_states"],
            controlnet_cond=reference,
            controlnet_flow=flow,
            landmarks=landmark_images,
            added_time_ids=added_time_ids,
            conditioning_scale=1.0,
            guess_mode=False,
            return_dict=False,
        )
        adapter_seconds = time.perf_counter() - started
        noise = unet(
            model_input,
            t,
            encoder_hidden_states=inputs["encoder_hidden_states"],
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            added_time_ids=added_time_ids,
            return_dict=False,
        )[0]
        uncond, cond = noise.chunk(2)
        guided = uncond + guidance * (cond - uncond)
        prev = scheduler.step(guided, t, latents).prev_sample

        karras = KarrasFixScheduler.from_config(SVD_SCHEDULER_CONFIG)
        karras.set_timesteps(NUM_INFERENCE_STEPS)
        karras.scale_model_input(latents, karras.timesteps[STEP_INDEX])
        prev_karras = karras.step(guided, karras.timesteps[STEP_INDEX], latents).prev_sample
    info["step_seconds"] = round(time.perf_counter() - started, 1)
    info["adapter_seconds"] = round(adapter_seconds, 1)

    for i, r in enumerate(down):
        out[f"adapter_down_{i:02d}"] = r
    out["adapter_mid"] = mid
    out["unet_noise"] = noise
    out["guided_noise"] = guided
    out["prev_sample"] = prev
    out["prev_sample_karras_fix"] = prev_karras
    out["karras_fix_timesteps"] = karras.timesteps.float()

    inputs["timestep"] = t.reshape(1).float()
    inputs["sigma"] = sigma.reshape(1).float()
    inputs["noisy_latents"] = latents
    inputs["model_input"] = model_input
    inputs["reference"] = reference
    inputs["flow_cfg"] = flow
    inputs["landmark_images_cfg"] = landmark_images
    inputs["added_time_ids"] = added_time_ids
    inputs["guidance"] = guidance

    if save_weights:
        started = time.perf_counter()
        adapter.save_pretrained(str(exchange / "adapter"), safe_serialization=True)
        unet.save_pretrained(str(exchange / "unet"), safe_serialization=True)
        info["save_seconds"] = round(time.perf_counter() - started, 1)
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="MOFA-Video-Keypoint folder")
    parser.add_argument("--exchange", type=Path, required=True, help="folder for weights/results")
    parser.add_argument("--commit", default="", help="upstream commit, recorded in meta.json")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    root = args.upstream.resolve()
    if not (root / "models" / "ldmk_ctrlnet.py").is_file():
        print(f"upstream tree not found at {root}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    install_cupy_stub()
    sys.path.insert(0, str(root))
    import diffusers
    import models.softsplat as upstream_softsplat

    upstream_softsplat.softsplat_func = SplatSumCPU  # the wrapper softsplat() stays upstream's

    exchange = args.exchange.resolve()
    exchange.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    started = time.perf_counter()
    gen = torch.Generator().manual_seed(SEED)
    inputs = make_inputs(gen)
    out: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {
        "upstream": str(root),
        "upstream_commit": args.commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "height": HEIGHT,
        "width": WIDTH,
        "frames": FRAMES,
        "step_index": STEP_INDEX,
        "num_inference_steps": NUM_INFERENCE_STEPS,
        "seed": SEED,
        "unet_config": SVD_UNET_CONFIG,
        "scheduler_config": SVD_SCHEDULER_CONFIG,
    }
    try:
        import cv2
        import transformers

        meta["opencv"] = cv2.__version__
        meta["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - optional for the record only
        pass
    print("conditioning ...", flush=True)
    meta.update(run_conditioning(root, inputs, out))
    print("CMP ...", flush=True)
    t0 = time.perf_counter()
    meta.update(run_cmp(root, exchange, inputs, out, gen))
    meta["cmp_seconds"] = round(time.perf_counter() - t0, 1)
    print("adapter + UNet step ...", flush=True)
    meta.update(run_step(exchange, inputs, out, save_weights=True))

    save_file({k: v.contiguous() for k, v in inputs.items()}, str(exchange / "inputs.safetensors"))
    save_file({k: v.contiguous() for k, v in out.items()}, str(exchange / "outputs.safetensors"))
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    (exchange / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"upstream side done in {meta['total_seconds']} s; results in {exchange}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
