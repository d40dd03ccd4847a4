"""Driving-landmark detection: tracking vs detecting on every frame (speed and accuracy).

Run from the repository root (with faceshot installed, e.g. ``pip install -e .``)::

    python benchmarks/bench_detection.py [--frames 60]

Speed: milliseconds per frame of landmark work (decoding excluded: frames are decoded first and
reported separately), with the default dlib detector, for

* the synthetic astronaut clip (512x512, known motion; also its error against the truth);
* the shared driving videos (``../shared/data/videos``), resized to 512x512 as the paper does,
  when that folder is present.

Steadiness (shared driving videos at their own size, as
:func:`~faceshot_core.detection.detect_driving_landmarks` sees them): jitter (% of the
inter-ocular distance per frame, :func:`faceshot_core.detection.stability.jitter`), the smallest
share of a blink's and a mouth opening's depth that smoothing keeps
(:func:`~faceshot_core.detection.stability.amplitude_kept`, against the same tracker's unsmoothed
output), and the largest motion of any point on a clip of one frame repeated (H.264-encoded).
The baseline, measured in the same run, is the detector and tracker as they were before the
steadiness work: one dlib fit per box, the box re-derived from every frame's points, one refit,
no smoothing.

Accuracy: NME (mean point error / inter-ocular distance between the outer eye corners 36 and 45,
in %) on ``../shared/data/faces`` (300-W-style ``.pts`` ground truth).  Each still becomes a
short clip with small known motions (:func:`faceshot_core.synthetic_tracking.render_clip`), on
which the tracker and the per-frame detector both run; both are pointed at the annotated face
with ``anchor=`` (a photo may hold several people).  Frames where no face was found count as
misses and are left out of the NME.  Both numbers are measured in the same run, so their ratio
is fair.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from faceshot_core.detection import stability
from faceshot_core.detection.dlib_detector import DlibDetector
from faceshot_core.detection.smoothing import OneEuroParams, smooth_points
from faceshot_core.detection.tracking import FaceTracker
from faceshot_core.images import load_image
from faceshot_core.landmark_files import load_landmarks
from faceshot_core.synthetic_tracking import astronaut, astronaut_landmarks, render_clip
from faceshot_core.video import iter_frames, probe_video, write_video

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def run(
    detector: DlibDetector, frames: list[np.ndarray], *, track: bool, anchor=None
) -> tuple[list[np.ndarray | None], float, FaceTracker]:
    """Run a fresh tracker over ``frames``; returns (results, ms per frame, tracker).

    The tracker's ``frame_ms`` attribute keeps each frame's time (the first frame carries the
    one-off acquisition: whole-frame detection plus the CNN confirmation).
    """
    tracker = FaceTracker(detector, track=track, anchor=anchor)
    out, times = [], []
    for f in frames:
        start = time.perf_counter()
        out.append(tracker.update(f))
        times.append((time.perf_counter() - start) * 1000.0)
    tracker.frame_ms = times  # type: ignore[attr-defined]
    return out, float(np.mean(times)), tracker


def mean_error(a: list[np.ndarray | None], b: list[np.ndarray | None] | np.ndarray) -> float:
    errs = [
        float(np.linalg.norm(p - q, axis=1).mean())
        for p, q in zip(a, b, strict=True)
        if p is not None and q is not None
    ]
    return float(np.mean(errs)) if errs else float("nan")


def speed_section(detector: DlibDetector, n_frames: int) -> None:
    clips: list[tuple[str, list[np.ndarray], np.ndarray | None, float]] = []
    synth, truth = render_clip(astronaut(), astronaut_landmarks(), frames=n_frames)
    clips.append(("synthetic astronaut", synth, truth, float("nan")))
    videos = sorted((SHARED / "videos").glob("*.mp4")) if SHARED.is_dir() else []
    for path in videos:
        start = time.perf_counter()
        decoded = list(iter_frames(path))
        decode_ms = (time.perf_counter() - start) * 1000.0 / len(decoded)
        resized = [
            f if f.shape[:2] == (512, 512) else cv2.resize(f, (512, 512), cv2.INTER_AREA)
            for f in decoded
        ]
        clips.append((path.name, resized, None, decode_ms))
    if not videos:
        print("(../shared/data/videos not present: shared driving videos skipped)")

    print("\nSpeed, 512x512 frames (landmark work only; decoding listed separately)")
    head = (
        f"{'clip':<30} {'frames':>6} {'decode':>7} {'track':>7} {'steady':>7} {'per-frame':>9} "
        f"{'speed-up':>8} {'full det.':>9} {'|trk-pf|':>8} {'trk err':>7} {'pf err':>7}"
    )
    print(head)
    print(
        f"{'':<30} {'':>6} {'ms/f':>7} {'ms/f':>7} {'ms/f':>7} {'ms/f':>9} {'':>8} "
        f"{'(track)':>9} {'px':>8} {'px':>7} {'px':>7}"
    )
    print("-" * len(head))
    for name, frames, truth, decode_ms in clips:
        tracked, t_ms, tracker = run(detector, frames, track=True)
        per_frame, p_ms, _ = run(detector, frames, track=False)
        diff = mean_error(tracked, per_frame)
        t_err = mean_error(tracked, truth) if truth is not None else float("nan")
        p_err = mean_error(per_frame, truth) if truth is not None else float("nan")
        dec = f"{decode_ms:7.1f}" if np.isfinite(decode_ms) else f"{'-':>7}"
        te = f"{t_err:7.2f}" if np.isfinite(t_err) else f"{'-':>7}"
        pe = f"{p_err:7.2f}" if np.isfinite(p_err) else f"{'-':>7}"
        full = tracker.stats.detected
        steady = float(np.mean(tracker.frame_ms[1:]))  # type: ignore[attr-defined]
        print(
            f"{name:<30} {len(frames):>6} {dec} {t_ms:7.1f} {steady:7.1f} {p_ms:9.1f} "
            f"{p_ms / t_ms:7.1f}x {full:>9} {diff:8.2f} {te} {pe}"
        )
    print(
        "track = FaceTracker(track=True): the box held from the previous frame (moved to the "
        "landmarks' own box\n  outside a 2 % dead-band), confirmed by a nearby search; "
        "landmarks = mean of 8 dlib fits (ensemble);\n  'track' includes the first frame's "
        "one-off acquisition (whole-frame detection + CNN confirmation), 'steady' leaves it "
        "out.\nper-frame = whole-frame detection on every frame; speed-up = per-frame / track."
        "\n|trk-pf| = mean point distance between the two; err = mean point error against the "
        "known motion."
    )


# (label, ensemble fits, tracker options, smoothing) - the first row is the baseline.
STEADY_VARIANTS: list[tuple[str, int, dict[str, float], OneEuroParams | None]] = [
    ("before: 1 fit, box re-derived", 1, {"steady_band": 0.0, "refine": 1}, None),
    ("before + One-Euro (beta 12)", 1, {"steady_band": 0.0, "refine": 1}, OneEuroParams(beta=12)),
    ("now, smoothing=None", 8, {}, None),
    ("now, default (One-Euro)", 8, {}, OneEuroParams()),
]


def steadiness_section(still_frames: int) -> None:
    videos = sorted((SHARED / "videos").glob("*.mp4")) if SHARED.is_dir() else []
    if not videos:
        print("\n(../shared/data/videos not present: steadiness section skipped)")
        return
    print("\nSteadiness, shared driving videos at their own size (jitter: % of the inter-ocular")
    print(f"distance per frame; still: one frame repeated {still_frames} times, H.264)")
    head = (
        f"{'clip':<28} {'variant':<30} {'ms/f':>5} {'jitter':>7} {'ratio':>6} "
        f"{'blink':>6} {'mouth':>6} {'still':>6}"
    )
    print(head)
    print(f"{'':<28} {'':<30} {'':>5} {'% IOD':>7} {'':>6} {'kept':>6} {'kept':>6} {'px':>6}")
    print("-" * len(head))
    detectors = {n: DlibDetector(ensemble=n) for n in {v[1] for v in STEADY_VARIANTS}}
    with tempfile.TemporaryDirectory() as tmp:
        for path in videos:
            fps = probe_video(path).fps or 25.0
            frames = list(iter_frames(path))
            still_path = write_video(
                Path(tmp) / "still.mp4", [frames[len(frames) // 2]] * still_frames, fps
            )
            still = list(iter_frames(still_path))
            base_jitter = float("nan")
            for label, fits, options, params in STEADY_VARIANTS:
                raw, ms = _track(detectors[fits], frames, options)
                still_raw, _ = _track(detectors[fits], still, options)
                out = raw if params is None else smooth_points(raw, fps, params)
                still_out = still_raw if params is None else smooth_points(still_raw, fps, params)
                jit = stability.jitter(out)
                base_jitter = jit if np.isnan(base_jitter) else base_jitter
                kept = stability.amplitude_kept(raw, out) if params is not None else {}
                blink, mouth = (_pct(kept.get(k, float("nan"))) for k in ("blink", "mouth"))
                print(
                    f"{path.name:<28} {label:<30} {ms:5.1f} {100 * jit:6.2f}% "
                    f"{jit / base_jitter:5.2f}x {blink} {mouth} "
                    f"{stability.max_motion(still_out):6.2f}"
                )
    print(
        "ms/f = tracker time per frame (detection + landmarks, decoding excluded); ratio = jitter"
        " / the\n  'before' row's; kept = smallest share of a blink's / mouth opening's depth"
        " after smoothing,\n  against the same tracker's unsmoothed output; still = largest"
        " motion of any point between\n  two frames of the repeated-frame clip."
    )


def _track(
    detector: DlibDetector, frames: list[np.ndarray], options: dict[str, float]
) -> tuple[np.ndarray, float]:
    """Landmarks of every frame (all must have a face) and the tracker's ms per frame."""
    tracker = FaceTracker(detector, **options)  # type: ignore[arg-type]
    start = time.perf_counter()
    out = [tracker.update(f) for f in frames]
    ms = (time.perf_counter() - start) * 1000.0 / len(frames)
    if any(p is None for p in out):
        raise RuntimeError("a frame of a shared driving video has no face")
    return np.stack(out).astype(np.float64), ms  # type: ignore[arg-type]


def _pct(value: float) -> str:
    return f"{100 * value:5.1f}%" if np.isfinite(value) else f"{'-':>6}"


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    io = float(np.linalg.norm(truth[45] - truth[36]))
    return float(np.linalg.norm(points - truth, axis=1).mean() / io * 100.0)


def nme_section(detector: DlibDetector, n_frames: int) -> None:
    faces = SHARED / "faces"
    if not faces.is_dir():
        print("\n(../shared/data/faces not present: NME section skipped)")
        return
    print(f"\nNME on ../shared/data/faces (%, inter-ocular 36-45), {n_frames}-frame clips")
    head = (
        f"{'image':<28} {'size':>9} {'still':>6} {'per-frame':>9} {'track':>6} "
        f"{'pf miss':>7} {'trk miss':>8} {'trk ms/f':>8} {'pf ms/f':>8}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for pts_file in sorted(faces.glob("*.pts")):
        truth_still = load_landmarks(pts_file).points.astype(np.float64)
        image_file = next(
            p for p in sorted(faces.glob(pts_file.stem + ".*")) if p.suffix.lower() != ".pts"
        )
        image = load_image(image_file)
        anchor = detector.box_from_landmarks(truth_still)
        still = FaceTracker(detector, track=False, anchor=anchor).update(image)
        still_nme = nme(still, truth_still) if still is not None else float("nan")
        clip, truth = render_clip(image, truth_still, frames=n_frames, amplitude=0.5)
        first = detector.box_from_landmarks(truth[0])
        outs, ms = {}, {}
        for track in (False, True):
            outs[track], ms[track], _ = run(detector, clip, track=track, anchor=first)
        # NME over the frames where both found the face (a fair comparison), plus misses.
        common = [
            m for m in range(n_frames) if outs[False][m] is not None and outs[True][m] is not None
        ]
        pf = _mean([nme(outs[False][m], truth[m]) for m in common])
        tr = _mean([nme(outs[True][m], truth[m]) for m in common])
        misses = {t: sum(p is None for p in outs[t]) for t in (False, True)}
        rows.append((pf, tr))
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(
            f"{image_file.name:<28} {size:>9} {_fmt(still_nme, 6)} {_fmt(pf, 9)} {_fmt(tr, 6)} "
            f"{misses[False]:>7} {misses[True]:>8} {ms[True]:8.1f} {ms[False]:8.1f}"
        )
    both = [(pf, tr) for pf, tr in rows if np.isfinite(pf) and np.isfinite(tr)]
    if both:
        print("-" * len(head))
        pf_mean, tr_mean = np.mean([r[0] for r in both]), np.mean([r[1] for r in both])
        print(f"{'mean over images':<38} {_fmt(pf_mean, 16)} {_fmt(tr_mean, 6)}")
    print(
        "still = one detection on the unmoved image; per-frame / track = mean NME over the clip "
        "frames where both found the face; misses = clip frames where no face was found."
    )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _fmt(value: float, width: int) -> str:
    return f"{value:{width}.2f}" if np.isfinite(value) else f"{'miss':>{width}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="synthetic clip length")
    parser.add_argument("--nme-frames", type=int, default=20, help="clip length per still")
    parser.add_argument("--still-frames", type=int, default=12, help="repeated-frame clip length")
    args = parser.parse_args()
    import dlib

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, dlib {dlib.__version__}, OpenCV {cv2.__version__}"
    )
    detector = DlibDetector()
    speed_section(detector, args.frames)
    steadiness_section(args.still_frames)
    nme_section(detector, args.nme_frames)


if __name__ == "__main__":
    main()
