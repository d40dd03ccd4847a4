"""Landmark quality of the reposed sequences on real characters and real driving videos.

Run from the repository root (with faceshot installed and ``../shared/data`` present)::

    python benchmarks/bench_quality.py [--out benchmarks/out/quality] [--no-sheets]

References: every image in ``../shared/data`` with hand-annotated landmarks (300-W faces,
caricatures) and the demo cat.  Drivings: every video in ``../shared/data/videos`` plus a
synthetic *static* clip (the first frame of the first video repeated 40 times, encoded as a
video, losslessly and at the default quality, and detected like any other).  Driving
landmarks come from the default path of ``faceshot run``
(:func:`faceshot.pipeline.load_driving`, default detector and smoothing).

Per pair it prints, for the default retargeting and, as the baseline in the same process, the
bare run motion (``anatomy=False``, the paper's method made stable):

* ``viol``: share of frames that break any rule of :mod:`faceshot_core.anatomy`;
* ``mouth r`` / ``eyes r``: Pearson correlation of the character's mouth (eye) opening, as a
  fraction of the part's width, with the driving face's;
* ``blink``: for every driving blink (eye opening below 75 % of its level in the 21 frames
  around it), the character's closure (1 - opening / its level) over the driving face's; the
  worst blink is shown (1.0 = closes exactly as far, target >= 0.8).  The driving closure
  counts the detector's closed level (:data:`~faceshot_core.retarget.expression.EYE_CLOSED_LEVEL`
  of the eye width: dlib never brings the lids of a shut eye together) as shut;
* ``drift``: on the static clip, the largest distance of any point from its frame-0 position;
* ``jitter``: :func:`faceshot_core.detection.stability.jitter` of the character's sequence
  (median over frames of the points' second difference / sqrt 3, as a fraction of the
  character's inter-ocular distance; 0.005 is 0.5 %).

With sheets on, one PNG per pair (driving | reference | result with the ``warp`` backend, at
frame 0, the widest mouth, the deepest blink and two more) goes to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from faceshot.evaluation.motion import blink_completion, correlation, eye_ratio
from faceshot.pipeline import load_driving
from faceshot_backends.warp_engine import LandmarkWarper
from faceshot_core.anatomy import openings, violations
from faceshot_core.detection.stability import jitter
from faceshot_core.landmark_files import load_face
from faceshot_core.retarget import repair_reference, retarget_points
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.video import VideoWriter, iter_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STATIC_FRAMES = 40


@dataclass(frozen=True)
class Reference:
    name: str
    image: np.ndarray
    points: np.ndarray


def references() -> list[Reference]:
    """Every annotated image in the shared data, and the demo cat."""
    refs = [Reference("demo_cat", chelsea(), chelsea_landmarks().points.astype(np.float64))]
    for ann in sorted((DATA / "faces").glob("*.pts")) + sorted(
        (DATA / "caricatures").glob("*.txt")
    ):
        image_path = next(
            p for p in ann.parent.glob(ann.stem + ".*") if p.suffix not in (".pts", ".txt")
        )
        image = iio.imread(image_path)
        image = np.ascontiguousarray(
            image[..., :3] if image.ndim == 3 else np.stack([image] * 3, -1)
        )
        size = (image.shape[1], image.shape[0])
        face = repair_reference(load_face(ann, image_size=size))  # what frame 0 is (see retarget)
        refs.append(Reference(ann.stem, image, face.points.astype(np.float64)))
    return refs


def static_clips(folder: Path) -> list[Path]:
    """The first frame of the first driving video, repeated: a face that does not move.

    ``static.mp4`` is encoded losslessly (every frame decodes to the same pixels: "one frame
    repeated"); ``static_lossy.mp4`` at the default quality, where H.264 makes frame 0 (a key
    frame) differ from the others by a few grey levels, as in any real still video.
    """
    first = next(iter_frames(sorted((DATA / "videos").glob("*.mp4"))[0]))
    paths = [folder / "static.mp4", folder / "static_lossy.mp4"]
    for path, quality in zip(paths, (10, 8), strict=True):  # 10: crf 0, lossless
        with VideoWriter(path, 25.0, quality=quality) as writer:
            writer.write_all([first] * STATIC_FRAMES)
    return paths


def contact_sheet(ref: Reference, video: Path, driving: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Rows of driving | reference | result at five telling frames."""
    m = len(out)
    mouth = openings(driving).mouth_ratio
    picks = sorted(
        {0, int(np.argmax(mouth)), int(np.argmin(eye_ratio(driving))), m // 3, 2 * m // 3}
    )
    frames = {i: f for i, f in enumerate(iter_frames(video)) if i in picks}
    warper = LandmarkWarper(ref.image, ref.points)
    h = 256
    rows = []
    for i in picks:
        tiles = [frames[i], ref.image, warper.render(out[i])]
        rows.append(
            np.concatenate(
                [cv2.resize(t, (round(t.shape[1] * h / t.shape[0]), h)) for t in tiles], 1
            )
        )
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/quality"))
    parser.add_argument("--no-sheets", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        videos = [*sorted((DATA / "videos").glob("*.mp4")), *static_clips(Path(tmp))]
        drivings = {v: load_driving(v).points.astype(np.float64) for v in videos}
        columns = ("viol", "mouth r", "eyes r", "blink", "drift", "jitter")
        header = f"{'reference':<18} {'driving':<28} | " + " ".join(f"{c:>7}" for c in columns)
        header += f" | baseline: {'viol':>7} {'mouth r':>7}"
        print(header)
        print("-" * len(header))
        summary: dict[str, list[float]] = {"viol": [], "mouth": [], "eyes": [], "blink": []}
        for ref in references():
            for video, dri in drivings.items():
                out = retarget_points(ref.points, dri).astype(np.float64)
                base = retarget_points(ref.points, dri, anatomy=False).astype(np.float64)
                od, oc, ob = openings(dri), openings(out), openings(base)
                viol = float(violations(out).any(-1).mean())
                viol_b = float(violations(base).any(-1).mean())
                static = video.name.startswith("static")
                mouth_r = correlation(oc.mouth_ratio, od.mouth_ratio)
                eyes_r = correlation(eye_ratio(out), eye_ratio(dri))
                blink = blink_completion(dri, out)
                drift = (
                    float(np.linalg.norm(out - out[0], axis=-1).max()) if static else float("nan")
                )
                summary["viol"].append(viol)
                if not static:
                    summary["mouth"].append(mouth_r)
                    summary["eyes"].append(eyes_r)
                    summary["blink"].append(blink)
                mouth_b = correlation(ob.mouth_ratio, od.mouth_ratio)
                figures = (viol, mouth_r, eyes_r, blink, drift, jitter(out))
                line = f"{ref.name:<18} {video.stem[-27:]:<28} | "
                line += " ".join(f"{v:7.3f}" for v in figures)
                print(f"{line} | {'':>9} {viol_b:7.3f} {mouth_b:7.3f}")
                if not args.no_sheets:
                    sheet = contact_sheet(ref, video, dri, out)
                    iio.imwrite(args.out / f"{ref.name}__{video.stem}.png", sheet)
    print("-" * len(header))
    print(f"frames with a violation, worst pair: {max(summary['viol']):.2f}")
    print(f"median mouth r {np.nanmedian(summary['mouth']):.3f}, ", end="")
    print(f"eyes r {np.nanmedian(summary['eyes']):.3f}; ", end="")
    print(f"worst blink {np.nanmin(summary['blink']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
