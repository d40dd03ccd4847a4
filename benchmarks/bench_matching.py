"""Diffusion feature extraction for one reference, against a careless implementation.

Run from the repository root with ``faceshot[match]`` installed (torch, diffusers, transformers)::

    python benchmarks/bench_matching.py                  # 512x512, ~5 min, 2 cores
    python benchmarks/bench_matching.py --size 256       # about 1.5 min
    python benchmarks/bench_matching.py --full-baseline  # + ~2.5 min at 512

No weights can be downloaded, so the *full-size* architectures of the paper's setting are
built with random weights: SD 1.5 UNet (859.5M parameters), VAE, CLIP ViT-L/14 text encoder,
the CLIP ViT-H-14 image encoder (632M) and an IP-Adapter (sd15 layout) attached through the
same loading path as the released file.  Compute does not depend on the weights' values, so the
timings are those of the real model on this machine (float32 on CPU).

What is timed: one reference image (scikit-image's cat) with a target image as IP-Adapter
prompt (Eq. 3), i.e. what the matcher does per new character:

* ``faceshot``: :class:`DiffusionFeatureExtractor`: text embedding computed once, DDIM inversion
  stopped at the UNet call at t=301 (16 calls), that last call cut after ``up_blocks[1]``.
* ``faceshot, cached``: the same image again (memory cache: no model call).
* ``careless``: the obvious port of the method: the text prompt re-encoded at every step, the
  inversion run through all 50 steps, full UNet calls, the feature kept from the call at 301.
  Both produce the same feature map (checked).  To stay within a few minutes it is measured up
  to that call (16 of its 50 calls) and its remaining 34 steps are extrapolated at its measured
  seconds per call, marked ``*``; ``--full-baseline`` measures all 50.

Before timing, one UNet call warms up the kernels (the first call is slower).  Peak RSS is the
process maximum (it includes building the models).  A GPU section runs when CUDA is present.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers import DDIMInverseScheduler

from faceshot_core.matching.architectures import SD15_SCHEDULER
from faceshot_core.matching.architectures import build as build_architecture
from faceshot_core.matching.clip_embedder import ClipImageEmbedder
from faceshot_core.matching.diffusion import (
    DiffusionFeatureExtractor,
    FeatureCache,
    attach_ip_adapter,
)
from faceshot_core.matching.tiny_models import released_ip_adapter, tiny_tokenizer
from faceshot_core.sample_data import astronaut, chelsea

PROMPT = "a photo of a face"


def build_models() -> dict[str, Any]:
    """Full-size SD 1.5 + IP-Adapter modules with random weights (float32, CPU)."""
    torch.manual_seed(0)
    unet, vae = build_architecture("unet15"), build_architecture("vae")
    text, image = build_architecture("text"), build_architecture("image")
    attach_ip_adapter(unet, released_ip_adapter(unet, 1024, scale=0.02))
    return {
        "unet": unet.eval(),
        "vae": vae.eval(),
        "text_encoder": text.eval(),
        "tokenizer": tiny_tokenizer(model_max_length=77),
        "image": image.eval(),
    }


class CallClock:
    """Counts UNet calls and records when each starts (a forward pre-hook)."""

    def __init__(self, unet: Any):
        self.starts: list[float] = []
        self._handle = unet.register_forward_pre_hook(
            lambda m, a: self.starts.append(time.perf_counter())
        )

    def reset(self) -> None:
        self.starts.clear()

    def remove(self) -> None:
        self._handle.remove()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def careless_feature(
    m: dict[str, Any],
    image: np.ndarray,
    prompt: np.ndarray,
    size: int,
    device: str,
    dtype: torch.dtype,
    *,
    all_steps: bool = True,
) -> np.ndarray:
    """The obvious port: text re-encoded per step, all 50 inverse steps, full UNet calls.

    ``all_steps=False`` stops after the call at t=301 (the benchmark default; the rest is
    extrapolated by the caller from the measured calls).
    """
    from PIL import Image

    with torch.inference_mode():
        pixels = np.array(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
        dist = m["vae"].encode(x).latent_dist
        z = dist.sample(generator=torch.Generator("cpu").manual_seed(42)) * 0.18215
        image_embeds = m["clip"].image_embeds([prompt])[:, None, :].to(dtype)
        sched = DDIMInverseScheduler.from_config(SD15_SCHEDULER)
        sched.set_timesteps(50)
        seen: list[torch.Tensor] = []
        hook = m["unet"].up_blocks[1].register_forward_hook(lambda mod, a, o: seen.append(o))
        ids = m["tokenizer"](
            [PROMPT], padding="max_length", max_length=77, return_tensors="pt"
        ).input_ids.to(device)
        feature = None
        for t in sched.timesteps:
            text = m["text_encoder"](ids)[0].to(dtype)
            added = {"image_embeds": [image_embeds]}
            eps = m["unet"](z.to(dtype), t, encoder_hidden_states=text, added_cond_kwargs=added)
            if int(t) == 301:
                feature = seen[-1][0].float().cpu().numpy()
                if not all_steps:
                    break
            seen.clear()
            z = sched.step(eps.sample.float(), t, z).prev_sample
        hook.remove()
    assert feature is not None
    return feature


def ratio(x: float) -> str:
    return f"{x:.3f}x" if x >= 0.01 else f"{x:.1e}x"


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def measure(clock: CallClock, fn: Callable[[], Any], device: str) -> tuple[Any, float, int, float]:
    """(result, wall, UNet calls, seconds per call from the first call's start to the end)."""
    clock.reset()
    start = time.perf_counter()
    out = fn()
    sync(device)
    end = time.perf_counter()
    calls = len(clock.starts)
    per_call = (end - clock.starts[0]) / calls if calls else float("nan")
    return out, end - start, calls, per_call


def run(size: int, device: str, dtype: torch.dtype, full_baseline: bool) -> None:
    t0 = time.perf_counter()
    m = build_models()
    build_s = time.perf_counter() - t0
    m["clip"] = ClipImageEmbedder(m.pop("image"), name="clip-vit-h-14", device=device, dtype=dtype)
    ex = DiffusionFeatureExtractor(
        unet=m["unet"],
        vae=m["vae"],
        text_encoder=m["text_encoder"],
        tokenizer=m["tokenizer"],
        scheduler_config=SD15_SCHEDULER,
        model_id="random-sd15",
        image_encoder=m["clip"],
        image_size=size,
        device=device,
        dtype=dtype,
    )
    reference, target = chelsea(), astronaut()
    warm_up(m, size, device, dtype)
    clock = CallClock(m["unet"])

    def faceshot() -> list[np.ndarray]:
        return ex.feature_maps([reference], [target])

    # faceshot cold, the baseline, faceshot cold again (cache emptied): the two faceshot runs
    # bracket the long baseline, so a drift in machine speed shows up rather than skewing.
    feats, cold1, fs_calls, fs_per1 = measure(clock, faceshot, device)
    _, cached, cached_calls, _ = measure(clock, faceshot, device)
    base, careless, cl_calls, cl_per = measure(
        clock,
        lambda: careless_feature(
            m, reference, target, size, device, dtype, all_steps=full_baseline
        ),
        device,
    )
    ex.cache = FeatureCache(ex.cache.max_entries)
    _, cold2, _, fs_per2 = measure(clock, faceshot, device)
    clock.remove()
    cold, fs_per = (cold1 + cold2) / 2, (fs_per1 + fs_per2) / 2
    note = " "
    if not full_baseline:  # the remaining 34 steps cost what its measured calls cost
        careless += (50 - cl_calls) * cl_per
        cl_calls, note = 50, "*"
    diff = float(np.abs(base - feats[0]).max())
    scale = float(np.abs(base).max())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    print(
        f"full-size SD 1.5 + IP-Adapter (random weights), {device} {str(dtype)[6:]}, "
        f"{size}x{size} reference with a target as image prompt -> feature {tuple(feats[0].shape)}"
    )
    header = (
        f"{'method':<40} | {'UNet calls':>10} | {'wall':>10} | {'s / call':>8} | "
        f"{'vs faceshot':>11}"
    )
    print(header)
    print("-" * len(header))
    rows = [
        ("faceshot (stop at t=301, cut last call)", fs_calls, cold, fs_per, " "),
        ("faceshot, cached (same image + prompt)", cached_calls, cached, float("nan"), " "),
        ("careless (50 steps, text every step)", cl_calls, careless, cl_per, note),
    ]
    for name, calls, wall, per, mark in rows:
        per_s = f"{per:8.2f}" if per == per else f"{'-':>8}"
        rel = ratio(wall / cold)
        print(f"{name:<40} | {calls:>10} | {fmt_s(wall) + mark:>10} | {per_s} | {rel:>11}")
    print(
        f"faceshot wall = mean of 2 cold runs ({fmt_s(cold1)}, {fmt_s(cold2)}) around the baseline"
    )
    if not full_baseline:
        print(
            "* measured up to the call at t=301 (16 calls), the other 34 steps extrapolated at "
            "its measured s / call; --full-baseline measures all 50"
        )
    print(
        f"faceshot is {careless / cold:.2f}x faster than careless, {cold / cached:,.0f}x when "
        f"cached; same feature: max |diff| {diff:.1e} (max |value| {scale:.1f})"
    )
    print(
        f"s / call = time from the first UNet call to the end / calls; model build {build_s:.1f} s;"
        f" peak RSS {rss:.2f} GB"
    )


def warm_up(m: dict[str, Any], size: int, device: str, dtype: torch.dtype) -> None:
    """One full UNet call and one CLIP call: the first call of a process is slower."""
    latent = size // 8
    with torch.inference_mode():
        m["unet"](
            torch.zeros(1, 4, latent, latent, device=device, dtype=dtype),
            301,
            torch.zeros(1, 77, 768, device=device, dtype=dtype),
            added_cond_kwargs={
                "image_embeds": [torch.zeros(1, 1, 1024, device=device, dtype=dtype)]
            },
        )
        m["clip"].image_embeds([astronaut()])
    sync(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="reference image size (512)")
    parser.add_argument(
        "--full-baseline",
        action="store_true",
        help="run the careless baseline through all 50 steps (about 2.5 more minutes at 512)",
    )
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    print("== CPU (float32)")
    run(args.size, "cpu", torch.float32, args.full_baseline)
    print("== GPU")
    if torch.cuda.is_available():
        run(args.size, "cuda", torch.float16, args.full_baseline)
    else:
        print("no CUDA device")


if __name__ == "__main__":
    main()
