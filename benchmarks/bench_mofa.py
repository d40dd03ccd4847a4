"""MOFA-Video generation: wall time, seconds per denoising step and peak GPU memory.

Run on a CUDA machine from the repository root (with ``pip install -e . -e plugins/mofa``)::

    python benchmarks/bench_mofa.py                  # released sizes, 50 frames at 512x512, fp16
    python benchmarks/bench_mofa.py --tiny --device cpu --frames 30 --size 64   # smoke run

Every module is built at the released size with random weights directly on the device
(:func:`faceshot_mofa.testing.random_models`): time and memory are those of the released
weights, the frames are noise.  The reference is scikit-image's cat at the working size with
its 68 landmarks, driven by a synthetic head motion with a blink and an opening mouth.  Each
setting generates the same clip with the same seed after one warm-up clip (which absorbs CUDA
initialisation and, for ``compile``, the compilation); the first row is the baseline and the
last column the ratio of its wall time to each row's.  The paper reports 79.4 s for 50 frames
on an H800.

Settings: ``baseline`` (SDPA attention, the default in diffusers), ``channels_last`` (UNet and
adapter in channels-last memory format), ``compile`` (``torch.compile`` of the UNet and adapter
blocks), ``offload`` (idle models in CPU memory), ``decode 4`` (VAE decode chunk 4 instead of 8).
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import cv2
import numpy as np
import torch
from faceshot_mofa.context_pairing import pair_contexts
from faceshot_mofa.pipeline import GenerationSettings, MofaPipeline
from faceshot_mofa.testing import random_models

from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.synthetic import HeadMotion, expression_sequence


def inputs(size: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The cat stretched to ``size`` x ``size`` and ``frames`` driving poses of its landmarks."""
    image = chelsea()
    h, w = image.shape[:2]
    points = chelsea_landmarks().points * np.array([size / w, size / h], dtype=np.float32)
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    motion = HeadMotion(shift_x=size / 64, roll_degrees=4.0, period=max(frames, 2))
    return resized, expression_sequence(points, frames, motion=motion).astype(np.float32)


def run_once(pipeline: MofaPipeline, image: np.ndarray, sequence: np.ndarray,
             settings: GenerationSettings) -> tuple[float, float, int]:  # fmt: skip
    """Wall seconds, seconds per window step and peak GPU memory (bytes) of one clip."""
    cuda = pipeline.models.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    steps: list[float] = []

    def progress(event: Any) -> None:
        if event.stage == "denoising":
            steps.append(time.perf_counter())

    start = time.perf_counter()
    frames = list(pipeline.generate(image, sequence, seed=1, settings=settings, progress=progress))
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    assert len(frames) == len(sequence)
    per_step = float(np.diff(steps).mean()) if len(steps) > 1 else float("nan")
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    return wall, per_step, peak


def configure(models: Any, name: str) -> GenerationSettings:
    """Apply setting ``name`` to ``models`` (in place) and return its generation settings."""
    if name == "channels_last":  # 2-D convolutions only: the temporal layers hold 5-D weights
        for model in (models.unet, models.adapter):
            for module in model.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
    elif name == "compile":
        for model in (models.unet, models.adapter):
            for part in (*model.down_blocks, model.mid_block, *getattr(model, "up_blocks", ())):
                part.compile()
    elif name == "offload":
        models.offload = True
        models.on_device()  # everything to the CPU until needed
    return GenerationSettings(decode_chunk=4 if name == "decode 4" else 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tiny", action="store_true", help="tiny modules (a smoke run)")
    parser.add_argument("--settings", default="baseline,channels_last,decode 4,offload,compile")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_mofa: no CUDA device here; use --tiny --device cpu for a smoke run")
    dtype = getattr(torch, args.dtype)
    image, sequence = inputs(args.size, args.frames)
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    print(f"# MOFA generation, {args.frames} frames at {args.size}x{args.size}, {args.dtype}, "
          f"{'tiny' if args.tiny else 'released-size'} random weights, 25 steps")  # fmt: skip
    device_name = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
                   else platform.processor() or "cpu")  # fmt: skip
    print(f"# {device_name}, torch {torch.__version__}")
    print("| setting | wall s | s / window step | peak GPU GiB | speed vs baseline |")
    print("|---|---|---|---|---|")
    baseline = None
    for name in names:
        models = random_models(tiny=args.tiny, device=args.device, dtype=dtype)
        pair_contexts([models.unet, models.adapter], "upstream")  # the backend's default
        pipeline = MofaPipeline(models)
        settings = configure(models, name)
        run_once(pipeline, image, sequence, settings)  # warm-up
        wall, per_step, peak = run_once(pipeline, image, sequence, settings)
        baseline = baseline or wall
        print(f"| {name} | {wall:.1f} | {per_step:.3f} | {peak / 2**30:.1f} | "
              f"{baseline / wall:.2f}x |", flush=True)  # fmt: skip
        models.release()
        del pipeline, models
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
