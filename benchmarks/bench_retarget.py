"""Wall time of the vectorised retargeting against the plain per-point loop, on one core.

Run from the repository root (with faceshot installed, e.g. ``pip install -e .``)::

    python benchmarks/bench_retarget.py

Thread pools are pinned to one thread *before* numpy is imported (the environment variables below
are read once, at import), so the numbers are single-core numbers on any machine; retargeting
uses no BLAS call anyway, the pin only keeps the comparison honest.  Each entry is the best of
``N`` runs (the least disturbed one).  Both implementations (the loop is
:mod:`faceshot_core.retarget_loop`) run in this same process on the same synthetic clip (the mean
face of :mod:`faceshot_core.synthetic_faces` with blinks, a talking mouth, brow raises, head sway
and roll, and detector noise).  The loop baseline is measured up to 1,000 frames; for 100,000
frames its time is extrapolated linearly from the 1,000-frame measurement (the loop does the same
work for every frame), and the table says so.  The paper's own Python loop takes 0.751 s for 100
frames on its machine (FaceShot Table 6) - a different machine, for scale only.

The "vectorised" columns time the bare motion (``anatomy=False``), which the loop reproduces
exactly; the "+ anatomy" columns time the default call, which adds the shaping step (opening
model, chin, projection onto the anatomical rules; :mod:`faceshot_core.retarget.shaping`).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from faceshot_core.retarget import retarget_points  # noqa: E402
from faceshot_core.retarget_loop import retarget_loop  # noqa: E402
from faceshot_core.synthetic_faces import (  # noqa: E402
    face_down,
    mean_face,
    rigid,
    with_eyes_closed,
    with_mouth_open,
)

FRAME_COUNTS = (1, 100, 1_000, 100_000)
LOOP_MAX_FRAMES = 1_000  # beyond this the loop time is extrapolated


def driving_clip(num_frames: int, seed: int = 0) -> np.ndarray:
    """A talking, blinking, moving head: float32 ``[M, 68, 2]`` in a 512x512 frame."""
    rng = np.random.default_rng(seed)
    face = mean_face(512)
    t = np.arange(num_frames, dtype=np.float64)
    # Per-frame expression weights (frame 0 neutral).
    mouth = 0.35 * (1 - np.cos(2 * np.pi * t / 17)) / 2
    blink = (np.sin(2 * np.pi * t / 90) > 0.97).astype(np.float64)
    brows = 6.0 * np.sin(2 * np.pi * t / 60) ** 2
    open_delta = with_mouth_open(face, 1.0) - face  # linear in the amount
    closed_delta = with_eyes_closed(face) - face
    brow_delta = np.zeros_like(face)
    brow_delta[17:27] = -face_down(face)  # one pixel up
    frames = (
        face
        + mouth[:, None, None] * open_delta
        + blink[:, None, None] * closed_delta
        + brows[:, None, None] * brow_delta
    )
    frames = frames + rng.normal(0.0, 0.7, frames.shape) * (t[:, None, None] > 0)
    roll = 0.15 * np.sin(2 * np.pi * t / 75)
    centre = face.mean(axis=0)
    cos, sin = np.cos(roll)[:, None], np.sin(roll)[:, None]
    x, y = frames[..., 0] - centre[0], frames[..., 1] - centre[1]
    out = np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1) + centre
    out[..., 0] += (20.0 * np.sin(2 * np.pi * t / 50))[:, None]
    return out.astype(np.float32)


def best_of(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.2f} s "


def main() -> None:
    reference = rigid(mean_face(512) * 0.8 + 50.0, 0.1)  # a smaller, tilted character
    clip = driving_clip(max(FRAME_COUNTS))
    retarget_points(reference, clip[:10])  # warm caches (index tables, numpy dispatch)

    print(
        f"retargeting, one core (python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()})"
    )
    header = (
        f"{'frames':>8} | {'vectorised':>11} | {'per frame':>11} | {'loop':>12} | "
        f"{'speed-up':>9} | {'max |diff| px':>13} | {'+ anatomy':>11} | {'per frame':>11}"
    )
    print(header)
    print("-" * len(header))
    loop_per_frame = None
    for m in FRAME_COUNTS:
        dri = clip[:m]
        vec_repeats = 200 if m <= 100 else (20 if m <= 1_000 else 5)
        t_vec = best_of(lambda dri=dri: retarget_points(reference, dri, anatomy=False), vec_repeats)
        t_full = best_of(lambda dri=dri: retarget_points(reference, dri), vec_repeats)
        note = " "
        if m <= LOOP_MAX_FRAMES:
            t_loop = best_of(lambda dri=dri: retarget_loop(reference, dri), 5 if m < 1_000 else 3)
            gap = retarget_points(reference, dri, anatomy=False) - retarget_loop(reference, dri)
            diff = float(np.abs(gap).max())
            diff_s = f"{diff:13.2e}"
            loop_per_frame = t_loop / m
        else:
            assert loop_per_frame is not None
            t_loop = loop_per_frame * m
            diff_s = f"{'-':>13}"
            note = "*"
        print(
            f"{m:>8,} | {fmt_time(t_vec):>11} | {fmt_time(t_vec / m):>11} | "
            f"{fmt_time(t_loop) + note:>12} | {t_loop / t_vec:8.0f}x | {diff_s} | "
            f"{fmt_time(t_full):>11} | {fmt_time(t_full / m):>11}"
        )
    print(
        f"* extrapolated: {LOOP_MAX_FRAMES:,}-frame loop time per frame x frames "
        "(the loop costs the same for every frame)."
    )
    print("Best of N runs each; float32 outputs compared over all points and frames.")


if __name__ == "__main__":
    main()
