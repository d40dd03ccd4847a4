"""Frames per second of the CPU warp engine against scikit-image's piecewise-affine warp.

Run from the repository root (with faceshot installed, e.g. ``pip install -e .``)::

    python benchmarks/bench_warp.py

The reference is scikit-image's astronaut (512x512) with its dlib landmarks.  The driving
sequence is 100 frames of the synthetic head motion the demo uses (sway, bob, roll, scale;
:mod:`faceshot_core.synthetic`) with a blink and a talking mouth applied to the landmarks first.
A second reference, the cat (chelsea) resized to 512x512, has a face that fills the frame: the
engine recomputes only the bounding box of the moved triangles, so this is its slow case.

The baseline runs in the same process on the same vertices (landmarks plus the engine's
anchors for each frame): ``skimage.transform.PiecewiseAffineTransform`` estimated per frame and
``skimage.transform.warp`` (bilinear, edge mode).  It is slow, so it runs on only
``BASELINE_FRAMES`` frames spread over the sequence; frames/s are per-frame averages either way.
The last column compares the engine's frames (warp only, no mouth interior or lid shadow)
with the baseline's on the same frames: mean absolute difference in grey levels.  It is not
zero: scikit-image re-triangulates the moved points every frame, and beyond the face (and its
apron) the engine warps with a smooth field instead of the mesh's big outer triangles, which
the baseline stretches piecewise affinely up to the pinned image border.  Setup is the best of
3 builds after a first one (which also imports ``scipy.spatial``); the engine's frames/s are
the best of 3 passes over the sequence (this 2-core machine is shared, and other processes
make single passes noisy).  OpenCV uses its default thread count.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import cv2
import numpy as np

from faceshot.pipeline import detect_reference
from faceshot_backends.warp_engine import LandmarkWarper
from faceshot_core.sample_data import astronaut, chelsea, chelsea_landmarks
from faceshot_core.synthetic import HeadMotion, motion_matrices
from faceshot_core.synthetic_faces import with_eyes_closed, with_mouth_open

NUM_FRAMES = 100
BASELINE_FRAMES = 5
SIZE = 512


def driving_sequence(reference: np.ndarray, num_frames: int) -> np.ndarray:
    """Head motion plus a blink every 25 frames and a mouth opening and closing: [M, 68, 2]."""
    t = np.arange(num_frames, dtype=np.float64)
    blink = np.clip(1.0 - np.abs((t % 25) - 12) / 3.0, 0.0, 1.0)  # closed at frames 12, 37, ...
    mouth = 0.5 * (1.0 - np.cos(2.0 * np.pi * t / 20.0)) / 2.0  # 0 .. 0.5 of the mouth width
    closed_delta = with_eyes_closed(reference) - reference
    open_delta = with_mouth_open(reference, 1.0) - reference  # linear in the amount
    faces = reference + blink[:, None, None] * closed_delta + mouth[:, None, None] * open_delta
    centre = reference.mean(axis=0)
    mats = motion_matrices(num_frames, (float(centre[0]), float(centre[1])), HeadMotion())
    lin, shift = mats[:, :, :2], mats[:, :, 2]
    return np.einsum("mij,mnj->mni", lin, faces) + shift[:, None, :]


def chelsea_512() -> tuple[np.ndarray, np.ndarray]:
    """The cat resized to 512x512 with its shipped landmarks scaled to match."""
    image = chelsea()
    h, w = image.shape[:2]
    points = chelsea_landmarks().points.astype(np.float64) * (SIZE / w, SIZE / h)
    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA), points


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def skimage_frames(warper: LandmarkWarper, sequence: np.ndarray) -> list[np.ndarray]:
    """The baseline: scikit-image's piecewise-affine warp on the engine's vertices."""
    from skimage.transform import PiecewiseAffineTransform, warp

    src = warper.mesh.vertices
    out = []
    for points in sequence:
        dst = warper.vertices_for(points)  # output pixel -> reference pixel
        if hasattr(PiecewiseAffineTransform, "from_estimate"):  # scikit-image >= 0.26
            tform = PiecewiseAffineTransform.from_estimate(dst, src)
        else:
            tform = PiecewiseAffineTransform()
            tform.estimate(dst, src)
        frame = warp(warper.image, tform, mode="edge", order=1, preserve_range=True)
        out.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return out


def row(name: str, frames: int, seconds: float, base_fps: float, diff: str) -> str:
    fps = frames / seconds
    return (
        f"{name:<34} | {frames:>6} | {seconds * 1e3 / frames:8.2f} ms | {fps:8.1f} | "
        f"{fps / base_fps:8.0f}x | {diff:>9}"
    )


def bench_reference(label: str, image: np.ndarray, reference: np.ndarray) -> list[str]:
    sequence = driving_sequence(reference, NUM_FRAMES)
    LandmarkWarper(image, reference)  # the first build also imports scipy.spatial
    setup = min(timed(lambda: LandmarkWarper(image, reference)) for _ in range(3))
    warper = LandmarkWarper(image, reference)
    plain = LandmarkWarper(image, reference, mouth_interior=False, eyelid_shadow=False)
    for points in sequence[:5]:  # warm-up: OpenCV thread pool, numpy dispatch
        warper.render(points)
        plain.render(points)
    sample = sequence[:: NUM_FRAMES // BASELINE_FRAMES]  # spread over blinks, mouth, motion
    base: list[np.ndarray] = []
    t_base = timed(lambda: base.extend(skimage_frames(plain, sample)))
    base_fps = len(sample) / t_base
    ours = [plain.render(p).astype(np.float64) for p in sample]
    diff = np.mean([np.abs(o - b).mean() for o, b in zip(ours, base, strict=True)])
    lines = [f"{label}: one-off setup (mesh, mouth layer, buffers) {setup * 1e3:.1f} ms"]
    lines.append(row("  skimage PiecewiseAffine + warp", len(sample), t_base, base_fps, "-"))
    engines = (
        ("  LandmarkWarper.render", warper, "-"),
        ("  ... warp only (no mouth, lids)", plain, f"{diff:9.2f}"),
    )
    for name, engine, diff_s in engines:
        t = min(timed(lambda engine=engine: [engine.render(p) for p in sequence]) for _ in range(3))
        lines.append(row(name, NUM_FRAMES, t, base_fps, diff_s))
    return lines


def main() -> None:
    image = astronaut()
    reference = detect_reference(image).points.astype(np.float64)
    print(
        f"warp engine, {SIZE}x{SIZE} RGB (python {platform.python_version()}, numpy "
        f"{np.__version__}, OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads, "
        f"{platform.machine()})"
    )
    header = (
        f"{'':<34} | {'frames':>6} | {'per frame':>11} | {'frames/s':>8} | {'speed-up':>9} | "
        f"{'|diff| gl':>9}"
    )
    print(header)
    print("-" * len(header))
    for line in bench_reference("astronaut (face ~95 px wide)", image, reference):
        print(line)
    for line in bench_reference("chelsea 512x512 (face fills the frame)", *chelsea_512()):
        print(line)
    print(f"speed-up: against the baseline's frames/s ({BASELINE_FRAMES} frames).")
    print("|diff| gl: mean absolute difference from the baseline's frames, warp only, grey levels.")
    end_to_end(*chelsea_512())


def end_to_end(image: np.ndarray, reference: np.ndarray, num_frames: int = 100) -> None:
    """The warp backend through the H.264 encoder, as `faceshot run` drives it."""
    import tempfile
    from pathlib import Path

    from faceshot_backends import AnimationRequest, load_backend
    from faceshot_backends.builtin.warp_backend import WarpBackend
    from faceshot_core.video import write_video

    request = AnimationRequest(
        reference_image=image, reference_landmarks=reference.astype(np.float32),
        sequence=driving_sequence(reference, num_frames), fps=25.0,
    )  # fmt: skip
    backend = load_backend(WarpBackend, device="cpu")  # loaded once, used for both runs
    engine_only = timed(lambda: sum(1 for _ in backend.animate(request)))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "warp.mp4"
        encoded = timed(lambda: write_video(out, backend.animate(request), 25.0))
    print(f"\nwarp backend end to end, {SIZE}x{SIZE}, {num_frames} frames (chelsea):")
    print(f"  backend frames only      {num_frames / engine_only:8.1f} frames/s")
    print(f"  backend + H.264 encoding {num_frames / encoded:8.1f} frames/s "
          f"(ratio {engine_only / encoded:.2f} of frames-only speed)")  # fmt: skip


if __name__ == "__main__":
    main()
