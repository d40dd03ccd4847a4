"""faceshot half of the MOFA-Video parity check: the same weights and inputs through our code.

Runs in faceshot's own environment after ``upstream_side.py`` has filled the exchange folder.
It loads upstream's random weights with faceshot's loaders (``load_cmp`` on the released
``.pth.tar`` format, ``load_adapter`` on the folder upstream's ``save_pretrained`` wrote, the
stock diffusers SVD UNet ``from_pretrained``), runs

* the conditioning (sparse flow, landmark images),
* CMP (logits on the same 384x384 input, the read-out flow, the whole ``dense_flow``),
* the adapter on upstream's exact step inputs (12 down residuals + mid),
* the UNet on upstream's residuals (``unet_forward``, isolating the UNet and its residual quirk),
* one denoising step through faceshot's own sampling code (``MofaPipeline._predictor`` inside
  ``sampling.sample_windows`` with a one-step schedule: scaling, adapter, UNet, guidance, Euler;
  the landmark images it draws per window are checked to be asked for with the window's
  landmarks and replaced by upstream's, whose OpenCV may rasterise clipped lines differently),

and prints a table of maximum absolute differences against upstream's outputs, also relative to
the largest magnitude of upstream's tensor.

The adapter, UNet and step rows are computed once per value of the backend's
``context_pairing`` option, installed exactly as the backend installs it
(:func:`faceshot_mofa.context_pairing.pair_contexts` on the UNet and the adapter) and removed
again before the next: ``upstream`` (the default, as diffusers 0.24.0 paired the temporal
cross-attention's CLIP contexts in MOFA's release: row ``r`` sees video ``r % batch``) is held
to the tolerances; ``per_video`` (SVD's own pairing, what current diffusers does unhooked) is
informational, since with two videos per batch (guidance) it is expected to differ.

Exit status 1 when a row exceeds its tolerance; the landmark-image row only counts when both
sides ran the same OpenCV (clipped thick lines are rasterised differently across versions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch

# The rows and tables are shared with the other parity checks, in tools/parity_common.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from parity_common import TOLERANCE, Table

#: Values of the backend's ``context_pairing`` option checked; the first is the default and the
#: one held to the tolerances, the others are informational.
VARIANTS = ("upstream", "per_video")


def _timed(label: str, timings: dict[str, float], fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    timings[label] = round(time.perf_counter() - started, 1)
    return result


def compare_conditioning(
    table: Table, meta: dict[str, Any], inputs: dict[str, torch.Tensor], up: dict[str, torch.Tensor]
) -> None:
    import cv2
    from faceshot_mofa.cmp import CMP_SIZE
    from faceshot_mofa.conditioning import landmark_images, sparse_flow

    landmarks = inputs["landmarks"]
    h, w = inputs["image"].shape[-2:]
    flow, mask = sparse_flow(landmarks, (h, w))
    table.add("conditioning", "sparse flow", flow, up["sparse_flow"], "exact")
    table.add("conditioning", "sparse mask", mask, up["sparse_mask"], "exact")
    at384 = landmarks / torch.tensor([w, h], dtype=torch.float32) * CMP_SIZE
    flow, mask = sparse_flow(at384, (CMP_SIZE, CMP_SIZE))
    table.add("conditioning", "sparse flow @384", flow, up["sparse_flow_384"], "exact")
    table.add("conditioning", "sparse mask @384", mask, up["sparse_mask_384"], "exact")
    drawn = landmark_images(landmarks, (h, w))
    # Frames 0 and 1 have every point inside the canvas; frames 2 and 3 have one outside.
    table.add("conditioning", "landmark images 0-1", drawn[:2], up["landmark_images"][:2], "exact")
    same_cv = meta.get("opencv") == cv2.__version__
    if not same_cv:
        print(
            f"  (OpenCV {meta.get('opencv')} upstream vs {cv2.__version__} here: lines clipped "
            "at the canvas border are rasterised differently, so the next row is informative)"
        )
    table.add(
        "conditioning",
        "landmark images 2-3",
        drawn[2:],
        up["landmark_images"][2:],
        "exact" if same_cv else "info",
    )


def compare_cmp(
    table: Table,
    exchange: Path,
    inputs: dict[str, torch.Tensor],
    up: dict[str, torch.Tensor],
    timings: dict[str, float],
) -> None:
    from faceshot_mofa.cmp import dense_flow, load_cmp
    from faceshot_mofa.conditioning import expected_flow
    from torch.nn.functional import interpolate

    ckpt = next((exchange / "cmp" / "checkpoints").glob("ckpt_iter_*.pth.tar"))
    network = _timed("cmp load", timings, lambda: load_cmp(ckpt))
    image = up["image_384"].unsqueeze(0)
    sparse = torch.cat([up["sparse_flow_384"][0:1], up["sparse_mask_384"][0:1]], dim=1)
    with torch.no_grad():
        logits = network(image * 2 - 1, sparse)
    table.add("CMP", "logits", logits, up["cmp_logits"])
    flow = expected_flow(logits, network.config.nbins, network.config.fmax)
    flow = interpolate(flow, size=(384, 384), mode="bilinear", align_corners=True)
    table.add("CMP", "flow @384 (frame 1)", flow, up["cmp_flow_384"])
    dense = _timed(
        "dense_flow", timings, lambda: dense_flow(network, inputs["image"], inputs["landmarks"])
    )
    table.add("CMP", "dense_flow", dense, up["dense_flow"])


def compare_step(
    table: Table,
    exchange: Path,
    meta: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    up: dict[str, torch.Tensor],
    timings: dict[str, float],
    variants: tuple[str, ...],
) -> None:
    import faceshot_mofa.pipeline as pipeline_module
    from diffusers import EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from faceshot_mofa.adapter_files import load_adapter
    from faceshot_mofa.context_pairing import ContextPairing, pair_contexts
    from faceshot_mofa.pipeline import GenerationSettings, MofaModels, MofaPipeline
    from faceshot_mofa.sampling import Schedule, sample_windows
    from faceshot_mofa.unet import unet_forward

    adapter = _timed("adapter load", timings, lambda: load_adapter(exchange / "adapter"))
    unet = _timed(
        "unet load",
        timings,
        lambda: UNetSpatioTemporalConditionModel.from_pretrained(
            str(exchange / "unet"), torch_dtype=torch.float32
        ),
    )
    unet.eval().requires_grad_(False)

    t = inputs["timestep"][0]
    model_input = inputs["model_input"]
    ehs = inputs["encoder_hidden_states"]
    time_ids = inputs["added_time_ids"]
    down_keys = [f"adapter_down_{i:02d}" for i in range(12)]
    names = [f"down {i:02d}" for i in range(12)]

    scheduler = EulerDiscreteScheduler.from_config(meta["scheduler_config"])
    full = Schedule.from_scheduler(scheduler, meta["num_inference_steps"], torch.device("cpu"))
    table.add("schedule", "timesteps", full.timesteps.float(), up["timesteps"])
    table.add("schedule", "sigmas", full.sigmas, up["sigmas"])
    i = meta["step_index"]
    one = Schedule(
        timesteps=full.timesteps[i : i + 1],
        sigmas=full.sigmas[i : i + 2],
        init_noise_sigma=full.init_noise_sigma,
        prediction_type=full.prediction_type,
    )
    models = MofaModels(
        unet=unet, vae=None, image_encoder=None, adapter=adapter, cmp=None,
        scheduler=scheduler, device=torch.device("cpu"), dtype=torch.float32,
    )  # fmt: skip
    predict = MofaPipeline(models)._predictor(
        ehs[1:2],
        inputs["image_latents"][:, 0],
        inputs["reference"][0:1],
        inputs["flow_cfg"][0],
        inputs["landmarks"].numpy(),
        GenerationSettings(),
    )

    seen: dict[str, Any] = {}

    def upstream_drawings(landmarks: Any, size: tuple[int, int], canvas: int = 320) -> torch.Tensor:
        # The predictor draws each window's landmark images; the step is given upstream's
        # (OpenCV versions differ at clipped lines, see the conditioning rows) once the
        # predictor has asked for the right ones.
        drawn = inputs["landmark_images_cfg"][0]
        if not (torch.equal(torch.as_tensor(landmarks), inputs["landmarks"]) and canvas == 320
                and tuple(size) == tuple(drawn.shape[-2:])):  # fmt: skip
            raise SystemExit("the predictor drew other landmarks than the window's")
        return drawn.clone()

    def recording_unet_forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen["model_input"], seen["down"], seen["mid"] = args[1], args[5], args[6]
        seen["noise"] = unet_forward(*args, **kwargs)
        return seen["noise"]

    def recording_predict(
        x: torch.Tensor, window: list[int], tt: torch.Tensor, scales: torch.Tensor
    ) -> torch.Tensor:
        seen["guided"] = predict(x, window, tt, scales)
        return seen["guided"]

    @torch.no_grad()
    def run(variant: str, kind: str) -> torch.Tensor:
        # 1. The adapter alone, on upstream's exact inputs.
        started = time.perf_counter()
        down, mid = adapter(
            model_input, t, ehs, time_ids, inputs["reference"], inputs["flow_cfg"],
            inputs["landmark_images_cfg"], conditioning_scale=1.0,
        )  # fmt: skip
        timings[f"adapter forward ({variant})"] = round(time.perf_counter() - started, 1)
        for name, ours, key in zip(names, down, down_keys, strict=True):
            table.add("adapter", name, ours, up[key], kind, variant)
        table.add("adapter", "mid", mid, up["adapter_mid"], kind, variant)
        del down, mid

        # 2. The UNet alone, on upstream's exact inputs and upstream's residuals.
        started = time.perf_counter()
        noise = unet_forward(
            unet, model_input, t, ehs, time_ids, [up[k] for k in down_keys], up["adapter_mid"]
        )
        timings[f"unet forward ({variant})"] = round(time.perf_counter() - started, 1)
        table.add("UNet", "noise (upstream resid.)", noise, up["unet_noise"], kind, variant)
        del noise

        # 3. One step through faceshot's sampler and predictor.
        seen.clear()
        saved = pipeline_module.unet_forward, pipeline_module.landmark_images
        pipeline_module.unet_forward = recording_unet_forward
        pipeline_module.landmark_images = upstream_drawings
        try:
            started = time.perf_counter()
            window = list(range(meta["frames"]))
            prev = sample_windows(inputs["noisy_latents"], one, recording_predict, windows=[window])
            timings[f"step ({variant})"] = round(time.perf_counter() - started, 1)
        finally:
            pipeline_module.unet_forward, pipeline_module.landmark_images = saved
        return prev

    for variant in variants:
        # Only the default pairing is held to the tolerance; the others are for comparison.
        kind = "deep" if variant == VARIANTS[0] else "info"
        # Installed exactly as the backend's ``load`` does, undone through the handles after.
        handles = pair_contexts([unet, adapter], cast("ContextPairing", variant))
        print(f"  context_pairing={variant}: {len(handles)} temporal blocks hooked", flush=True)
        if variant == "upstream" and not handles:
            raise SystemExit("pair_contexts found no temporal transformer block to hook")
        try:
            prev = run(variant, kind)
        finally:
            for handle in handles:
                handle.remove()
        if variant == variants[0]:
            table.add("step", "scaled model input", seen["model_input"], inputs["model_input"])
        for name, ours, key in zip(names, seen["down"], down_keys, strict=True):
            table.add("step", f"adapter {name}", ours, up[key], kind, variant)
        table.add("step", "adapter mid", seen["mid"], up["adapter_mid"], kind, variant)
        table.add("step", "UNet noise (2 branches)", seen["noise"], up["unet_noise"], kind, variant)
        table.add("step", "guided (CFG 1->3)", seen["guided"], up["guided_noise"], kind, variant)
        table.add("step", "Euler prev_sample", prev, up["prev_sample"], kind, variant)
        table.add(
            "step", "prev_sample vs karras_fix", prev, up["prev_sample_karras_fix"], kind, variant
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", type=Path, required=True, help="upstream_side.py's output")
    parser.add_argument("--json", type=Path, help="also write the rows and timings here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated subset of {VARIANTS} for the adapter/UNet/step rows",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants must name some of {VARIANTS}")

    from safetensors.torch import load_file

    exchange = args.exchange.resolve()
    meta = json.loads((exchange / "meta.json").read_text())
    inputs = load_file(str(exchange / "inputs.safetensors"))
    up = load_file(str(exchange / "outputs.safetensors"))
    if args.threads:
        torch.set_num_threads(args.threads)

    import cv2
    import diffusers

    print(
        f"upstream: torch {meta['torch']}, diffusers {meta['diffusers']}, numpy {meta['numpy']}, "
        f"OpenCV {meta.get('opencv')} (commit {meta.get('upstream_commit') or '?'})\n"
        f"ours:     torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"OpenCV {cv2.__version__}\n"
        f"size {meta['height']}x{meta['width']}, {meta['frames']} frames, "
        f"step {meta['step_index']} of {meta['num_inference_steps']}, float32 on CPU\n"
    )
    table = Table(VARIANTS)
    timings: dict[str, float] = {}
    print(Table.header(), flush=True)
    started = time.perf_counter()
    compare_conditioning(table, meta, inputs, up)
    compare_cmp(table, exchange, inputs, up, timings)
    compare_step(table, exchange, meta, inputs, up, timings, variants)
    timings["total"] = round(time.perf_counter() - started, 1)

    failed = [r for r in table.rows if not r.ok]
    print(f"\ntimings (s): {json.dumps(timings)}")
    print(f"tolerances (relative): {json.dumps(TOLERANCE)}")
    if args.markdown:
        print("\n" + table.markdown())
    if args.json:
        record = {
            "meta": meta,
            "ours": {
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "opencv": cv2.__version__,
            },
            "rows": [{**r.__dict__, "relative": r.relative, "ok": r.ok} for r in table.rows],
            "timings": timings,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if failed:
        names = ", ".join(f"{r.group}/{r.name} [{r.variant or '-'}]" for r in failed)
        print(f"\n{len(failed)} row(s) beyond tolerance: {names}")
        return 1
    print("\nall rows within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
