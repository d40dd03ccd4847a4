"""Anatomical validity of a reposed sequence and how faithfully it follows the driving face.

The same checks as the landmark-quality benchmark (``benchmarks/bench_quality.py``, which
imports them from here), so a user's figure and the benchmark's mean the same thing:

* :func:`violation_share`: share of frames breaking any rule of :mod:`faceshot_core.anatomy`;
* :func:`correlation` of the mouth (eye) opening, as a fraction of the part's width, with the
  driving face's: does the character open when the driver opens;
* :func:`blink_completion`: does the character's eye close as far as the driver's, blink by
  blink (the worst blink counts: one missed blink is what a viewer notices).

Openings are ratios of part widths, so a cat's and a human's compare; only the sequence's own
landmarks are read, not the rendered pixels (the point-tracking figures look at those).
"""

from __future__ import annotations

import os

import numpy as np

from faceshot.evaluation.report import Figure, measured, not_measured
from faceshot.pipeline import is_landmark_file, load_driving
from faceshot_core.anatomy import openings, violations
from faceshot_core.detection import FaceDetector
from faceshot_core.errors import FaceshotUserError
from faceshot_core.landmark_files import load_sequence
from faceshot_core.progress import ProgressSink
from faceshot_core.retarget.expression import EYE_CLOSED_LEVEL

__all__ = [
    "DrivingLengthError",
    "blink_completion",
    "correlation",
    "driving_points",
    "eye_ratio",
    "motion_figures",
    "violation_share",
]


class DrivingLengthError(FaceshotUserError):
    """The driving motion is shorter than the sequence it supposedly drove."""


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two signals; NaN when either is constant (it is undefined)."""
    if a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def eye_ratio(points: np.ndarray) -> np.ndarray:
    """``[M]`` mean opening of both eyes, as a fraction of each eye's corner-to-corner width."""
    o = openings(points)
    return 0.5 * (o.right_eye_ratio + o.left_eye_ratio)


def blink_completion(driving: np.ndarray, character: np.ndarray) -> float:
    """Worst character closure / driving closure over the driving blinks (NaN: no blink).

    A blink is a frame whose eye opening is the lowest of the 21 frames around it and below
    75 % of their highest level.  The driving closure counts the detector's closed level
    (:data:`~faceshot_core.retarget.expression.EYE_CLOSED_LEVEL` of the eye width; dlib never
    brings the lids of a shut eye together) as shut, when the eye's level is well above it.
    """
    d, c = eye_ratio(driving), eye_ratio(character)
    worst = float("nan")
    for m in range(len(d)):
        lo, hi = max(0, m - 10), min(len(d), m + 11)
        level = float(d[lo:hi].max())
        if level <= 0 or d[m] > 0.75 * level or d[m] > d[lo:hi].min():
            continue  # not the deepest point of a blink
        floor = EYE_CLOSED_LEVEL if level >= 2 * EYE_CLOSED_LEVEL else 0.0
        closure_d = 1.0 - max(d[m] - floor, 0.0) / (level - floor)
        level_c = float(c[lo:hi].max())
        closure_c = 1.0 - c[m] / level_c if level_c > 0 else 0.0
        ratio = closure_c / closure_d
        worst = ratio if np.isnan(worst) else min(worst, ratio)
    return float(worst)


def violation_share(points: np.ndarray) -> float:
    """Share of the frames of ``[M, 68, 2]`` points that break any anatomy rule."""
    return float(violations(np.asarray(points, dtype=np.float64)).any(-1).mean())


def driving_points(
    driving: str | os.PathLike[str],
    frames: int,
    *,
    detector: str | FaceDetector = "dlib",
    progress: ProgressSink | None = None,
) -> np.ndarray:
    """The first ``frames`` driving landmarks, from a saved landmark file or a video.

    A video is detected as ``faceshot run`` does (:func:`faceshot.pipeline.load_driving`,
    default smoothing).  A longer driving motion is cut (``run --max-frames`` cuts it so); a
    shorter one cannot have driven the sequence and is refused.
    """
    if is_landmark_file(driving):
        sequence = load_sequence(driving)
    else:
        sequence = load_driving(driving, detector=detector, progress=progress)
    if len(sequence) < frames:
        raise DrivingLengthError(
            f"driving {driving} has {len(sequence)} frames, the landmarks {frames}: it cannot "
            "be the motion of this result"
        )
    return np.asarray(sequence.points[:frames], dtype=np.float64)


def motion_figures(points: np.ndarray, driving: np.ndarray | None, why_not: str) -> list[Figure]:
    """Validity of the reposed ``points``, and fidelity to ``driving`` (``why_not`` if None)."""
    seq = np.asarray(points, dtype=np.float64)
    figures = [measured("anatomy.violations", violation_share(seq))]
    keys = ("motion.mouth_correlation", "motion.eye_correlation", "motion.blink_completion")
    if driving is None:
        return figures + [not_measured(key, why_not) for key in keys]
    mouth = correlation(openings(seq).mouth_ratio, openings(driving).mouth_ratio)
    eyes = correlation(eye_ratio(seq), eye_ratio(driving))
    constant = "the driving face's or the sequence's {} does not move (correlation undefined)"
    return [
        *figures,
        measured(keys[0], mouth, constant.format("mouth")),
        measured(keys[1], eyes, constant.format("eyes")),
        measured(keys[2], blink_completion(driving, seq), "the driving face does not blink"),
    ]
