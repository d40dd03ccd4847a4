"""Upstream half of the MOFA-Video parity check: run the ORIGINAL code on random weights.

Runs inside the separate upstream environment (torch 2.0.1, diffusers 0.24; see README.md), with
an export of upstream's ``MOFA-Video-Keypoint/`` folder on ``sys.path``.  Nothing of upstream is
copied here: its modules are imported from the external checkout, and this script only adds

* a CPU stand-in for the CuPy kernel behind upstream's ``softsplat`` (``_SplatSumCPU``; upstream's
  own ``softsplat(..., strMode='avg')`` wrapper, ones channel and ``+ 1e-7`` normalisation
  included, still runs unchanged around it), plus an empty ``cupy`` module so the file imports;
* CPU shims while CMP is built (upstream calls ``.cuda()`` and maps the checkpoint to CUDA);
* random weights for every tensor (the zero-initialised convolutions included, so that every
  path contributes), random inputs, and the few lines of glue that upstream keeps inside
  ``main()`` of ``mofa_keypoint.py`` and the denoising loop of
  ``pipeline/svdxt_pipeline_ctrlnet_loop.py`` (restated with line references below).

It writes, under ``--exchange``: the weights (CMP in the released ``.pth.tar`` format, the adapter
and the UNet through upstream's ``save_pretrained``), ``inputs.safetensors``,
``outputs.safetensors`` and ``meta.json``.  ``our_side.py`` then loads the same weights into
faceshot's modules and compares.  Everything is float32 on CPU.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import platform
import shutil
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

# --- the problem size -------------------------------------------------------------------------
#: Image height and width (multiples of 64; not square, so that a swapped axis shows).
HEIGHT, WIDTH = 128, 192
#: Frames in the window (frame 0 is the reference); the adapter sees FRAMES - 1 flows.
FRAMES = 4
#: Index of the denoising step compared (of 25, as the pipelines run).
STEP_INDEX = 10
NUM_INFERENCE_STEPS = 25
SEED = 20261130

#: The SVD-xt(-1.1) UNet configuration (``unet/config.json`` of the released base model).
SVD_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    ],
    "up_block_types": [
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    ],
    "block_out_channels": [320, 640, 1280, 1280],
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [5, 10, 20, 20],
    "num_frames": 25,
}

#: The SVD-xt(-1.1) scheduler configuration (``scheduler/scheduler_config.json``).  Upstream's
#: pipeline is built with ``from_pretrained`` on that folder, which instantiates the class named
#: there, diffusers' own ``EulerDiscreteScheduler`` (the ``karras_fix`` copy in upstream's
#: ``utils/`` is only a type annotation); both are run here.
SVD_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}

#: Hard-coded by upstream's pipeline (fps 6, motion bucket 128, noise augmentation 0.02).
ADDED_TIME_IDS = (6.0, 128.0, 0.02)
#: CMP experiment whose config the released checkpoint belongs to.
CMP_EXPERIMENT = "models/cmp/experiments/semiauto_annot/resnet50_vip+mpii_liteflow"
CMP_ITER = 1


# --- CPU stand-ins for CUDA-only parts of upstream ------------------------------------------------
class _SplatSumCPU:
    """CPU replacement for upstream's ``softsplat_func`` (the CuPy kernel ``softsplat_out``).

    The kernel, for every input pixel (x, y) of every channel: target ``(x + u, y + v)``; skip if
    not finite; ``x0 = floor``, ``y0 = floor``; add ``value * weight`` to the four neighbours that
    lie inside the image, with ``NW = (x0+1-fx)(y0+1-fy)``, ``NE = (fx-x0)(y0+1-fy)``,
    ``SW = (x0+1-fx)(fy-y0)``, ``SE = (fx-x0)(fy-y0)`` computed in float32.  Written here with
    ``index_add_`` (float32 accumulation, like the kernel's ``atomicAdd``; only the order of the
    additions differs).  Only ``apply`` is provided: the parity check needs no gradients.
    """

    @staticmethod
    def apply(ten_in: torch.Tensor, ten_flow: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ten_in.shape
        assert ten_flow.shape == (n, 2, h, w)
        ten_in = ten_in.float()
        ten_flow = ten_flow.float()
        rows = torch.arange(h, dtype=torch.float32)
        ys, xs = torch.meshgrid(rows, torch.arange(w, dtype=torch.float32), indexing="ij")
        out = ten_in.new_zeros(n, c, h * w)
        for b in range(n):
            fx = xs + ten_flow[b, 0]
            fy = ys + ten_flow[b, 1]
            finite = torch.isfinite(fx) & torch.isfinite(fy)
            x0 = torch.floor(torch.where(finite, fx, torch.zeros_like(fx)))
            y0 = torch.floor(torch.where(finite, fy, torch.zeros_like(fy)))
            corners = (
                (x0, y0, (x0 + 1 - fx) * (y0 + 1 - fy)),
                (x0 + 1, y0, (fx - x0) * (y0 + 1 - fy)),
                (x0, y0 + 1, (x0 + 1 - fx) * (fy - y0)),
                (x0 + 1, y0 + 1, (fx - x0) * (fy - y0)),
            )
            values = ten_in[b].reshape(c, h * w)
            for cx, cy, weight in corners:
                inside = finite & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
                keep = inside.reshape(-1)
                index = (cy * w + cx).reshape(-1)[keep].long()
                out[b].index_add_(1, index, values[:, keep] * weight.reshape(-1)[keep])
        return out.reshape(n, c, h, w)


def _install_cupy_stub() -> None:
    """Let ``models/softsplat.py`` import without CuPy (it only decorates with ``memoize``)."""
    stub = types.ModuleType("cupy")
    stub.memoize = lambda **_: lambda f: f  # type: ignore[attr-defined]
    sys.modules.setdefault("cupy", stub)


@contextmanager
def _cpu_shims() -> Iterator[None]:
    """While CMP is built: ``.cuda()`` is a no-op and checkpoints are mapped to the CPU."""
    saved_tensor_cuda = torch.Tensor.cuda
    saved_module_cuda = nn.Module.cuda
    saved_sync = torch.cuda.synchronize
    saved_load = torch.load

    def load_on_cpu(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        return saved_load(f, map_location="cpu", **kwargs)

    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.synchronize = lambda *a, **k: None
    torch.load = load_on_cpu  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.Tensor.cuda = saved_tensor_cuda  # type: ignore[method-assign]
        nn.Module.cuda = saved_module_cuda  # type: ignore[method-assign]
        torch.cuda.synchronize = saved_sync
        torch.load = saved_load


def _function_from_file(path: Path, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Execute one top-level function of an upstream script without importing the script.

    ``mofa_keypoint.py`` imports accelerate, gradio-era helpers and checks the diffusers
    version at import time; only ``sample_inputs_face`` is needed, so its definition alone is
    compiled from upstream's file and run in ``namespace``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            module = ast.Module(body=[node], type_ignores=[])
            exec(compile(module, str(path), "exec"), namespace)
            return namespace[name]
    raise LookupError(f"{name} not found in {path}")


# --- random weights ---------------------------------------------------------------------------
def randomize_(module: nn.Module, seed: int) -> None:
    """Overwrite every parameter: weights N(0, 1/fan_in), norm scales 1 + N(0, 0.1), rest N(0, .05).

    Every tensor is random, the zero-initialised output convolutions included, so the check sees
    every path.  Unit-variance weights keep activations of the deep networks in range.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=gen)
            elif name.endswith("weight"):
                p.normal_(1.0, 0.1, generator=gen)
            else:
                p.normal_(0.0, 0.05, generator=gen)


def calibrate_batchnorm_(
    module: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Give CMP's BatchNorm layers running statistics that match its random weights."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    module.train()
    with torch.no_grad():
        for image, sparse in batches:
            module(image, sparse)
    module.eval()


# --- inputs -----------------------------------------------------------------------------------
def _smooth(gen: torch.Generator, shape: tuple[int, ...], size: tuple[int, int]) -> torch.Tensor:
    coarse = torch.randn(*shape, generator=gen)
    return functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)


def make_landmarks(gen: torch.Generator) -> torch.Tensor:
    """[FRAMES, 68, 2] (x, y) pixels; frame 0's points fall on distinct pixels at both sizes.

    Later frames move by a few pixels, and two points leave the image (negative and past the
    right edge) so that the sparse flow's clipping and the drawing's truncation are exercised.
    """
    for _ in range(1000):
        base = torch.rand(68, 2, generator=gen) * torch.tensor([WIDTH - 16.0, HEIGHT - 16.0]) + 8
        native = (base[:, 1].long() * WIDTH + base[:, 0].long()).unique().numel()
        at384 = base * torch.tensor([384.0 / WIDTH, 384.0 / HEIGHT])
        scaled = (at384[:, 1].long() * 384 + at384[:, 0].long()).unique().numel()
        if native == 68 and scaled == 68:
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError("could not draw 68 distinct landmark pixels")
    frames = [base]
    for _ in range(1, FRAMES):
        frames.append(base + 4.0 * torch.randn(68, 2, generator=gen))
    landmarks = torch.stack(frames)
    landmarks[2, 5] = torch.tensor([-3.7, 20.2])
    landmarks[3, 9] = torch.tensor([WIDTH + 2.5, HEIGHT - 0.5])
    return landmarks


def make_inputs(gen: torch.Generator) -> dict[str, torch.Tensor]:
    h, w = HEIGHT // 8, WIDTH // 8
    image = (torch.sigmoid(2.0 * _smooth(gen, (1, 3, 6, 8), (HEIGHT, WIDTH)))[0] * 255).round()
    image = image / 255.0  # [3, H, W] in [0, 1], as from an 8-bit picture
    # A smooth flow with some large motions (targets leave the image at every scale) plus a
    # little per-pixel noise so that no target falls exactly on a pixel.
    flow = 12.0 * _smooth(gen, (FRAMES - 1, 2, 3, 4), (HEIGHT, WIDTH))
    flow = flow + 0.3 * torch.randn(flow.shape, generator=gen)
    cond = torch.randn(1, 1, 1024, generator=gen)
    return {
        "image": image,
        "landmarks": make_landmarks(gen),
        "flow": flow.unsqueeze(0),  # [1, F-1, 2, H, W]
        "latents": torch.randn(1, FRAMES, 4, h, w, generator=gen),  # scaled by sigma below
        "image_latents": torch.randn(1, 1, 4, h, w, generator=gen).repeat(1, FRAMES, 1, 1, 1),
        # Classifier-free guidance batch: unconditional first (zeros), as upstream's
        # ``_encode_image`` builds it.
        "encoder_hidden_states": torch.cat([torch.zeros_like(cond), cond]),
    }


# --- the runs ---------------------------------------------------------------------------------
def run_conditioning(
    root: Path, inputs: dict[str, torch.Tensor], out: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Sparse flow (native and 384) and landmark images, with upstream's helpers."""
    import cv2
    from utils.utils import draw_landmarks, get_sparse_flow

    sample_inputs_face = _function_from_file(
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

    with _cpu_shims():
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
    _install_cupy_stub()
    sys.path.insert(0, str(root))
    import diffusers
    import models.softsplat as upstream_softsplat

    upstream_softsplat.softsplat_func = _SplatSumCPU  # the wrapper softsplat() stays upstream's

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
