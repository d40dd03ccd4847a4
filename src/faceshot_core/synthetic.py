"""Driving clips with a *known* motion, made from a still image.

A smooth head motion (sway, nod-like vertical bob, in-plane roll, breathing-like scale) is
applied to a portrait with ``cv2.warpAffine``; the same affine maps known landmarks, so every
frame comes with exact ground truth.  The demo uses it to run the whole pipeline on a fresh
machine, and the tests use it to check that the detector recovers a motion we chose.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceshot_core.schema import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from faceshot_core.video import write_video


@dataclass(frozen=True)
class HeadMotion:
    """Amplitudes of the synthetic motion; one full cycle every ``period`` frames."""

    shift_x: float = 18.0  # pixels
    shift_y: float = 8.0  # pixels
    roll_degrees: float = 8.0
    scale: float = 0.04  # relative
    period: int = 48


def motion_matrices(num_frames: int, center: tuple[float, float], motion: HeadMotion) -> np.ndarray:
    """Affine matrices ``[M, 2, 3]`` of a smooth motion about ``center``; frame 0 is identity."""
    t = 2.0 * np.pi * np.arange(num_frames) / motion.period
    dx = motion.shift_x * np.sin(t)
    dy = motion.shift_y * np.sin(2.0 * t)
    angle = motion.roll_degrees * np.sin(t + np.pi / 4) - motion.roll_degrees * np.sin(np.pi / 4)
    scale = 1.0 + motion.scale * (1.0 - np.cos(t)) / 2.0
    mats = np.empty((num_frames, 2, 3), dtype=np.float64)
    for m in range(num_frames):  # a handful of frames: clarity over vectorisation
        mats[m] = cv2.getRotationMatrix2D(center, float(angle[m]), float(scale[m]))
        mats[m, :, 2] += (dx[m], dy[m])
    return mats


def apply_affine(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Map ``[68, 2]`` points through each of ``[M, 2, 3]`` matrices: ``[M, 68, 2]`` float32."""
    pts = np.asarray(points, dtype=np.float64)
    out = np.einsum("mij,nj->mni", matrices[:, :, :2], pts) + matrices[:, None, :, 2]
    return out.astype(np.float32)


def warp_frames(image: np.ndarray, matrices: np.ndarray) -> Iterator[np.ndarray]:
    """Yield ``image`` warped by each matrix (edges replicated), one frame at a time."""
    h, w = image.shape[:2]
    for mat in matrices:
        yield cv2.warpAffine(
            image, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def write_motion_clip(
    path: str | os.PathLike[str],
    image: np.ndarray,
    landmarks: np.ndarray,
    *,
    num_frames: int = 48,
    fps: float = 24.0,
    motion: HeadMotion | None = None,
    audio_from: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Write a clip of ``image`` moving with a known motion; return ground truth ``[M, 68, 2]``.

    The motion turns about the landmarks' centre, so the face stays in view.
    """
    center = tuple(float(v) for v in np.asarray(landmarks, dtype=np.float64).mean(axis=0))
    mats = motion_matrices(num_frames, (center[0], center[1]), motion or HeadMotion())
    write_video(Path(path), warp_frames(image, mats), fps, audio_from=audio_from)
    return apply_affine(landmarks, mats)


def expression_sequence(
    points: np.ndarray,
    num_frames: int,
    *,
    motion: HeadMotion | None = None,
    blinks: int = 1,
    mouth_opening: float = 0.35,
) -> np.ndarray:
    """Poses ``[M, 68, 2]`` of a face: a head motion, blinks and a mouth opening and closing.

    Frame 0 is ``points`` unchanged (the rest pose).  ``mouth_opening`` is the largest drop of
    the lower lip as a fraction of the mouth width; eyes close to 10 % of their opening.
    Used to synthesise driving clips and conformance-test sequences with known expressions.
    """
    pts = np.asarray(points, dtype=np.float64)
    center = pts.mean(axis=0)
    seq = apply_affine(pts, motion_matrices(num_frames, (center[0], center[1]),
                                            motion or HeadMotion(period=num_frames)))  # fmt: skip
    seq = seq.astype(np.float64)
    t = np.linspace(0.0, 1.0, num_frames)
    mouth = np.sin(np.pi * t) ** 2  # opens and closes once
    blink = np.exp(-(((t * blinks) % 1.0 - 0.5) ** 2) / (2 * 0.06**2))  # brief closures
    for eye in (RIGHT_EYE, LEFT_EYE):
        upper, lower = [eye[1], eye[2]], [eye[5], eye[4]]
        gap = seq[:, lower] - seq[:, upper]
        seq[:, upper] += gap * (0.45 * blink)[:, None, None]
        seq[:, lower] -= gap * (0.45 * blink)[:, None, None]
    width = float(np.linalg.norm(pts[OUTER_LIPS[6]] - pts[OUTER_LIPS[0]]))
    down = _face_down(pts)
    lower_lip = [*INNER_LIPS[5:], *OUTER_LIPS[7:11]]
    seq[:, lower_lip] += (mouth * mouth_opening * width)[:, None, None] * down
    chin = list(range(5, 12))
    seq[:, chin] += (mouth * mouth_opening * 0.6 * width)[:, None, None] * down
    seq[0] = pts
    return seq.astype(np.float32)


def _face_down(points: np.ndarray) -> np.ndarray:
    """Unit vector from the brows toward the chin (the face's own "down")."""
    v = points[8] - 0.5 * (points[19] + points[24])
    return v / max(float(np.linalg.norm(v)), 1e-9)
