"""The diffusion backends' generation: wall time, seconds per window step, peak GPU memory.

Run on a CUDA machine from the repository root (with ``pip install -e . -e plugins/mofa -e
plugins/aniportrait``)::

    python benchmarks/bench_diffusion.py --backend mofa          # 50 frames at 512x512, fp16
    python benchmarks/bench_diffusion.py --backend aniportrait
    python benchmarks/bench_diffusion.py --backend mofa --tiny --device cpu --frames 12 --size 64

Every module is built at the released size with random weights directly on the device
(``faceshot_mofa.testing.random_models``, ``faceshot_aniportrait.testing.random_models``): time
and memory are those of the released weights, the frames are noise.  The reference is
scikit-image's cat at the working size with its 68 landmarks, driven by a synthetic head motion
with a blink and an opening mouth.  Each setting generates the same clip with the same seed
after one warm-up clip (which absorbs CUDA initialisation and, for ``compile``, the
compilation); the first row is the baseline and the last column the ratio of its wall time to
each row's.  The papers' figures for 50 frames on an H800: MOFA-Video 79.4 s, AniPortrait 100 s.

Settings: ``baseline`` (SDPA attention, the default in diffusers; each backend's default
options), ``channels_last`` (2-D convolutions of the denoising networks in channels-last memory
format), ``decode 4`` (4 frames per VAE call), ``offload`` (idle models in CPU memory),
``compile`` (``torch.compile`` of the denoising networks' blocks).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import torch

from faceshot_backends.torch_modules import compile_blocks
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.synthetic import HeadMotion, expression_sequence


def mofa(tiny: bool, device: str, dtype: torch.dtype) -> tuple[Any, Any, list[Any]]:
    """MOFA's pipeline, its default settings and its denoising networks."""
    from faceshot_mofa.context_pairing import pair_contexts
    from faceshot_mofa.pipeline import GenerationSettings, MofaPipeline
    from faceshot_mofa.testing import random_models

    models = random_models(tiny=tiny, device=device, dtype=dtype)
    pair_contexts([models.unet, models.adapter], "upstream")  # the backend's default
    return MofaPipeline(models), GenerationSettings(), [models.unet, models.adapter]


def aniportrait(tiny: bool, device: str, dtype: torch.dtype) -> tuple[Any, Any, list[Any]]:
    """AniPortrait's pipeline, its default settings and its denoising networks."""
    from faceshot_aniportrait.pipeline import AniPortraitPipeline, GenerationSettings
    from faceshot_aniportrait.testing import random_models

    models = random_models(tiny=tiny, device=device, dtype=dtype)
    nets = [models.denoising_unet, models.reference_unet]
    return AniPortraitPipeline(models), GenerationSettings(), nets


BACKENDS: dict[str, Callable[[bool, str, torch.dtype], tuple[Any, Any, list[Any]]]] = {
    "mofa": mofa,
    "aniportrait": aniportrait,
}


def inputs(size: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The cat stretched to ``size`` x ``size`` and ``frames`` driving poses of its landmarks."""
    image = chelsea()
    h, w = image.shape[:2]
    points = chelsea_landmarks().points * np.array([size / w, size / h], dtype=np.float32)
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    motion = HeadMotion(shift_x=size / 64, roll_degrees=4.0, period=max(frames, 2))
    return resized, expression_sequence(points, frames, motion=motion).astype(np.float32)


def run_once(
    pipeline: Any, image: np.ndarray, sequence: np.ndarray, settings: Any
) -> tuple[float, float, int]:
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


def configure(pipeline: Any, settings: Any, nets: list[Any], name: str) -> Any:
    """Apply setting ``name`` (in place) and return the generation settings to use."""
    if name == "channels_last":  # 2-D convolutions only: temporal layers hold 5-D weights
        for net in nets:
            for module in net.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.to(memory_format=torch.channels_last)
    elif name == "compile":
        compile_blocks(*nets)
    elif name == "offload":
        pipeline.models.offload = True
        pipeline.models.on_device()  # everything to the CPU until needed
    elif name == "decode 4":
        return replace(settings, decode_chunk=4)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="mofa", choices=sorted(BACKENDS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tiny", action="store_true", help="tiny modules (a smoke run)")
    parser.add_argument("--settings", default="baseline,channels_last,decode 4,offload,compile")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench_diffusion: no CUDA device; use --tiny --device cpu for a smoke run")
    dtype = getattr(torch, args.dtype)
    image, sequence = inputs(args.size, args.frames)
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    kind = "tiny" if args.tiny else "released-size"
    print(f"# {args.backend}, {args.frames} frames at {args.size}x{args.size}, {args.dtype}, "
          f"{kind} random weights, default options")  # fmt: skip
    device_name = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
                   else platform.processor() or "cpu")  # fmt: skip
    print(f"# {device_name}, torch {torch.__version__}")
    print("| setting | wall s | s / window step | peak GPU GiB | speed vs baseline |")
    print("|---|---|---|---|---|")
    baseline = None
    for name in names:
        pipeline, defaults, nets = BACKENDS[args.backend](args.tiny, args.device, dtype)
        settings = configure(pipeline, defaults, nets, name)
        run_once(pipeline, image, sequence, settings)  # warm-up
        wall, per_step, peak = run_once(pipeline, image, sequence, settings)
        baseline = baseline or wall
        print(f"| {name} | {wall:.1f} | {per_step:.3f} | {peak / 2**30:.1f} | "
              f"{baseline / wall:.2f}x |", flush=True)  # fmt: skip
        pipeline.models.release()
        del pipeline, nets
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
