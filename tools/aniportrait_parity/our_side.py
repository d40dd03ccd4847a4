"""faceshot half of the AniPortrait parity check: the same weights and inputs through our code.

Runs in faceshot's own environment after ``upstream_side.py`` has filled the exchange folder.
It loads upstream's random weights from the released-format ``.pth`` files with faceshot's
loaders (``load_pose_guider``, ``load_reference_unet``, ``load_denoising_unet`` on the folder:
``denoising_unet.pth`` + ``motion_module.pth`` merged as upstream merges them), runs

* the pose images' network input (``to_network`` on the same uint8 drawings) and the
  PoseGuider, with the window's batch statistics (as released) and with the running ones,
* the reference UNet's write (the stored reference-attention bank, float16 as upstream keeps it,
  and float32 against the reference UNet's own copy),
* the 3D denoising UNet alone on upstream's exact inputs (upstream's PoseGuider features),
* the scheduler (the 25 timesteps and ``sampling.ddim_step`` at every one of them),
* one denoising step through the plugin's own sampling code (``step.py``:
  ``AniPortraitPipeline._predictor`` inside ``sampling.sample_windows``, the reference
  attention written and read as ``generate`` does; PoseGuider, denoising UNet reading the bank
  with classifier-free-guidance halves, guidance 3.5, DDIM),

and prints a table of maximum absolute differences against upstream's outputs, also relative to
the largest magnitude of upstream's tensor.  Exit status 1 when a row exceeds its tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# The rows and tables are shared with the other parity checks, in tools/parity_common.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from parity_common import TOLERANCE, Table
from step import compare_step


def _timed(label: str, timings: dict[str, float], fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    timings[label] = round(time.perf_counter() - started, 1)
    return result


def _frames_first(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, h, w]`` -> ``[B * F, C, h, w]`` (the layout faceshot's modules use)."""
    return x.transpose(1, 2).flatten(0, 1)


def compare_pose(
    table: Table, exchange: Path, inputs: dict[str, torch.Tensor], up: dict[str, torch.Tensor],
    timings: dict[str, float],
) -> Any:  # fmt: skip
    from faceshot_aniportrait.checkpoints import load_pose_guider
    from faceshot_aniportrait.pose_images import to_network

    pose = to_network(inputs["pose_images"].numpy())
    table.add("pose input", "to_network [-1, 1]", pose, up["pose_input"])
    # The official scripts' uint8 arrays reach the network unscaled ([-1, 509]): not reproduced.
    table.add("pose input", "vs scripts' uint8 path", pose, up["pose_input_uint8_path"], "info")

    guider = _timed("pose guider load", timings, lambda: load_pose_guider(exchange))
    with torch.no_grad():
        batch = _timed("pose guider (batch stats)", timings, lambda: guider(up["pose_input"]))
        running = guider(up["pose_input"], batch_statistics=False)
    for k in range(5):
        table.add("PoseGuider", f"feature {k}, batch stats", batch[k], up[f"pose_train_{k}"])
    for k in range(5):
        table.add("PoseGuider", f"feature {k}, running", running[k], up[f"pose_eval_{k}"])
    # Upstream's two modes differ by this much: the rows above tell them apart.
    table.add("PoseGuider", "upstream train vs eval", up["pose_train_0"], up["pose_eval_0"], "info")
    return guider


def load_unets(exchange: Path, timings: dict[str, float]) -> tuple[Any, Any]:
    from faceshot_aniportrait.checkpoints import load_denoising_unet, load_reference_unet
    from faceshot_aniportrait.unet3d import DenoisingUNet3D

    reference = _timed("reference unet load", timings, lambda: load_reference_unet(exchange))
    with torch.device("meta"):
        denoising = DenoisingUNet3D()
    _timed("denoising unet load", timings, lambda: load_denoising_unet(denoising, exchange))
    return reference, denoising


def compare_bank(
    table: Table, reference: Any, denoising: Any, up: dict[str, torch.Tensor],
    timings: dict[str, float],
) -> None:  # fmt: skip
    """The stored reference tokens of all 16 blocks, by block path (so the pairing counts)."""
    from faceshot_aniportrait.reference_attention import ReferenceAttention

    for dtype, kind, prefix in ((torch.float16, "fp16", "bank."), (None, "float", "writer_bank.")):
        attention = ReferenceAttention(reference, denoising, store_dtype=dtype)
        started = time.perf_counter()
        with torch.no_grad():
            attention.write(up["ref_latents"][:1], up["ref_context"], 0)
        timings[f"reference write ({dtype})"] = round(time.perf_counter() - started, 1)
        ours = attention.bank
        theirs = {k[len(prefix) :]: v for k, v in up.items() if k.startswith(prefix)}
        if set(ours) != set(theirs) or len(ours) != 16:
            raise SystemExit(f"bank paths differ: ours {sorted(ours)}, upstream {sorted(theirs)}")
        if dtype is not None and any(v.dtype != dtype for v in ours.values()):
            raise SystemExit("the bank is not stored in float16")
        paths = attention.paths
        label = "float16, as read" if dtype else "float32, as written"
        table.add("ref. bank", f"16 blocks, {label}",
                  torch.cat([ours[p].float().flatten() for p in paths]),
                  torch.cat([theirs[p].float().flatten() for p in paths]), kind)  # fmt: skip
        for level in ("down_blocks.0", "mid_block", "up_blocks.3"):
            keys = [p for p in paths if p.startswith(level)]
            table.add("ref. bank", f"{level} ({len(keys)}), {'fp16' if dtype else 'fp32'}",
                      torch.cat([ours[p].float().flatten() for p in keys]),
                      torch.cat([theirs[p].float().flatten() for p in keys]), kind)  # fmt: skip
        attention.clear()


def compare_unet(
    table: Table, denoising: Any, inputs: dict[str, torch.Tensor], up: dict[str, torch.Tensor],
    timings: dict[str, float],
) -> None:  # fmt: skip
    """The 3D UNet alone (no reference attention) on upstream's exact inputs."""
    features = [up[f"pose_train_{k}"] for k in range(5)]  # [F, C, h, w], frames first
    t = up["step_timestep"][0].long()
    with torch.no_grad():
        out = _timed("unet forward (batch 1)", timings, lambda: denoising(
            inputs["unet_latents"], t, inputs["clip_image_embeds"][:, None], features))  # fmt: skip
    table.add("3D UNet", "output (no ref. attention)", out, up["unet_alone"], "deep")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchange", type=Path, required=True, help="upstream_side.py's output")
    parser.add_argument("--json", type=Path, help="also write the rows and timings here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()

    from safetensors.torch import load_file

    exchange = args.exchange.resolve()
    meta = json.loads((exchange / "meta.json").read_text())
    inputs = load_file(str(exchange / "inputs.safetensors"))
    up = load_file(str(exchange / "outputs.safetensors"))
    if args.threads:
        torch.set_num_threads(args.threads)

    import diffusers

    print(
        f"upstream: torch {meta['torch']}, diffusers {meta['diffusers']}, einops "
        f"{meta['einops']}, numpy {meta['numpy']} (commit {meta.get('upstream_commit') or '?'})\n"
        f"ours:     torch {torch.__version__}, diffusers {diffusers.__version__}\n"
        f"size {meta['height']}x{meta['width']} (latents {meta['height'] // 8}x"
        f"{meta['width'] // 8}), {meta['frames']} frames, step {meta['step_index']} of "
        f"{meta['num_inference_steps']}, guidance {meta['guidance_scale']}, float32 on CPU\n"
    )
    table = Table()
    timings: dict[str, float] = {}
    print(Table.header(), flush=True)
    started = time.perf_counter()
    guider = compare_pose(table, exchange, inputs, up, timings)
    reference, denoising = load_unets(exchange, timings)
    compare_bank(table, reference, denoising, up, timings)
    compare_unet(table, denoising, inputs, up, timings)
    models = {"pose_guider": guider, "reference_unet": reference, "denoising_unet": denoising}
    compare_step(table, models, meta, inputs, up, timings)
    timings["total"] = round(time.perf_counter() - started, 1)

    failed = [r for r in table.rows if not r.ok]
    print(f"\ntimings (s): {json.dumps(timings)}")
    print(f"tolerances (relative): {json.dumps(TOLERANCE)}")
    if args.markdown:
        print("\n" + table.markdown())
    if args.json:
        record = {
            "meta": meta,
            "ours": {"torch": torch.__version__, "diffusers": diffusers.__version__},
            "rows": [{**r.__dict__, "relative": r.relative, "ok": r.ok} for r in table.rows],
            "timings": timings,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    if failed:
        names = ", ".join(f"{r.group}/{r.name}" for r in failed)
        print(f"\n{len(failed)} row(s) beyond tolerance: {names}")
        return 1
    print("\nall rows within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
