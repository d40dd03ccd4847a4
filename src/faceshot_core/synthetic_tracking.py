"""Driving videos with *known* landmark motion for checking face tracking, from the astronaut.

For tests and benchmarks (``tests/test_detection.py``, ``benchmarks/bench_detection.py``);
faceshot itself does not use this module.  :mod:`faceshot_core.synthetic` makes the demo's
clips from given landmarks; these clips differ on purpose: the truth is dlib's own landmarks on
the still (so dlib's error measures tracking and resampling, not disagreement with an annotator),
the motion is larger and zooms (frame 0 is not the rest pose), the output can be resampled to
other sizes and aspect ratios, frames can hide the face, and a second face can compete with the
followed one.

The 68 landmarks are detected once on the still image; each frame is the image moved by a
known similarity transform (smooth translation, a few degrees of rotation, a little zoom) with
``cv2.warpAffine``, and the ground truth of the frame is the still's landmarks moved by the same
transform.  A detector that recovers the motion therefore reproduces the truth up to its own
sensitivity to resampling and to where its box falls, which is what the tolerances in
``tests/test_detection.py`` bound.

Options: frames where the face is hidden (covered by a flat grey patch, for gap filling), and
a two-face variant (the astronaut plus a second, growing copy of her head) for checking that the
tracker follows one face.  :func:`make_blink` makes landmark sequences with a blink and
jitter, for the smoothing checks.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceshot_core import sample_data
from faceshot_core.video import write_video

GREY = (128, 128, 128)


@dataclass(frozen=True)
class SyntheticVideo:
    """A written synthetic video and its ground truth."""

    path: Path
    truth: np.ndarray  # [M, 68, 2] float64, the face a tracker should follow
    size: tuple[int, int]  # (width, height)
    fps: float
    hidden: tuple[int, ...] = ()
    other: np.ndarray | None = None  # [M, 68, 2] of the second face (two-face variant)


@functools.cache
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (:func:`faceshot_core.sample_data.astronaut`), read-only, cached."""
    img = sample_data.astronaut()
    img.setflags(write=False)
    return img


@functools.cache
def astronaut_landmarks() -> np.ndarray:
    """The 68 points of the astronaut's face on the still image (dlib, detected once)."""
    from faceshot_core.detection.dlib_detector import DlibDetector

    det = DlibDetector()
    img = astronaut()
    boxes = det.detect(img)
    assert boxes, "dlib found no face on the astronaut image"
    pts = det.landmarks(img, boxes[0]).astype(np.float64)
    pts.setflags(write=False)
    return pts


def similarity(
    center: Sequence[float], angle_deg: float, scale: float, shift: Sequence[float]
) -> np.ndarray:
    """2x3 matrix: rotate by ``angle_deg`` and scale about ``center``, then translate."""
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), angle_deg, scale)
    m[:, 2] += np.asarray(shift, dtype=np.float64)
    return m


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points ``[..., 2]`` moved by the 2x3 affine ``m``."""
    return points @ m[:, :2].T + m[:, 2]


def smooth_motion(
    m: int, frames: int, *, amplitude: float = 1.0, period: float | None = None
) -> tuple[float, float, float, float]:
    """A smooth head motion at frame ``m``: ``(dx, dy, angle_deg, scale)``.

    ``amplitude`` 1.0 gives up to 24 px / 14 px translation, 8 degrees and +-8 % zoom at 512 px.
    """
    period = float(period or max(frames, 2))
    phase = 2 * np.pi * m / period
    dx = 24.0 * amplitude * np.sin(phase)
    dy = 14.0 * amplitude * np.sin(2 * phase + 0.5)
    angle = 8.0 * amplitude * np.sin(phase + 1.0)
    scale = 1.0 + 0.08 * amplitude * np.sin(0.5 * phase)
    return float(dx), float(dy), float(angle), float(scale)


def render_clip(
    image: np.ndarray,
    points: np.ndarray,
    *,
    frames: int = 30,
    size: int | tuple[int, int] | None = None,
    amplitude: float = 1.0,
    hidden: Sequence[int] = (),
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames of ``image`` under :func:`smooth_motion`, and the moved ``points`` per frame.

    ``size`` (width, height) resamples the output: the image is scaled uniformly to fit and
    centred, and the motion scales with it.  Hidden frames have the face covered by a flat grey
    patch.
    """
    h, w = image.shape[:2]
    out_w, out_h = (size, size) if isinstance(size, int) else (size or (w, h))
    # Uniform scale to fit the output, centred (other aspect ratios get grey bars).
    s = min(out_w / w, out_h / h)
    zoom = np.array([[s, 0, (out_w - s * w) / 2], [0, s, (out_h - s * h) / 2]], dtype=np.float64)
    center = points.mean(axis=0)
    face = float(np.ptp(points[:, 0]))
    out_frames: list[np.ndarray] = []
    truth = np.empty((frames, 68, 2))
    for m in range(frames):
        dx, dy, angle, scale = smooth_motion(m, frames, amplitude=amplitude)
        # Motion amplitudes are defined for a 512 px image; follow the image's own scale.
        k = max(w, h) / 512.0
        sim = similarity(center, angle, scale, (dx * k, dy * k))
        full = _compose(zoom, sim)
        frame = cv2.warpAffine(
            image,
            full,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=GREY,
        )
        truth[m] = apply(full, points)
        if m in hidden:
            _cover(frame, truth[m], face * s)
        out_frames.append(frame)
    return out_frames, truth


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    a = np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]])
    return a[:2]


def _cover(frame: np.ndarray, points: np.ndarray, face: float) -> None:
    cx, cy = points.mean(axis=0)
    half = 0.9 * face
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - 1.2 * half))
    x1, y1 = int(cx + half), int(cy + 1.1 * half)
    frame[y0:y1, x0:x1] = GREY


def make_driving_video(
    path: str | Path,
    *,
    frames: int = 30,
    size: int | tuple[int, int] = 512,
    fps: float = 25.0,
    amplitude: float = 1.0,
    hidden: Sequence[int] = (),
) -> SyntheticVideo:
    """Write the astronaut moving smoothly to ``path`` (H.264) and return its ground truth."""
    wh = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    clip, truth = render_clip(
        astronaut(),
        astronaut_landmarks(),
        frames=frames,
        size=wh,
        amplitude=amplitude,
        hidden=hidden,
    )
    write_video(path, clip, fps)
    return SyntheticVideo(Path(path), truth, (wh[0], wh[1]), fps, tuple(sorted(hidden)))


def render_two_faces(
    *, frames: int = 30, hidden: Sequence[int] = ()
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """768x512 frames: the astronaut (left, followed) and a copy of her head (right).

    The copy starts smaller (x0.8) and grows to x1.3 while the astronaut stays at her size,
    so a "pick the largest face" rule applied on every frame would switch faces midway; a
    tracker must not.  ``hidden`` frames cover the *followed* face only.
    """
    img, pts = astronaut(), astronaut_landmarks()
    width, height = 768, 512
    head_x0, head_y0, head_side = 112, 16, 220  # a crop around the face
    head = np.ascontiguousarray(img[head_y0 : head_y0 + head_side, head_x0 : head_x0 + head_side])
    head_pts = pts - np.array([head_x0, head_y0])
    face = float(np.ptp(pts[:, 0]))
    out: list[np.ndarray] = []
    truth_a = np.empty((frames, 68, 2))
    truth_b = np.empty((frames, 68, 2))
    for m in range(frames):
        dx, dy, angle, scale = smooth_motion(m, frames, amplitude=0.6)
        sim_a = similarity(pts.mean(axis=0), angle, scale, (dx, dy))
        frame = cv2.warpAffine(
            img, sim_a, (width, height), borderMode=cv2.BORDER_CONSTANT, borderValue=GREY
        )
        grow = 0.8 + 0.5 * m / max(frames - 1, 1)
        c = head_pts.mean(axis=0)
        sim_b = similarity(c, -angle, grow, (600 - c[0] - 8 * dx / 24, 250 - c[1]))
        patch = cv2.warpAffine(
            head, sim_b, (width, height), borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
        )
        mask = cv2.warpAffine(
            np.full(head.shape[:2], 255, np.uint8), sim_b, (width, height)
        ).astype(bool)
        frame[mask] = patch[mask]
        truth_a[m] = apply(sim_a, pts)
        truth_b[m] = apply(sim_b, head_pts)
        if m in hidden:
            _cover(frame, truth_a[m], face)
        out.append(frame)
    return out, truth_a, truth_b


def make_two_face_video(
    path: str | Path, *, frames: int = 30, fps: float = 25.0, hidden: Sequence[int] = ()
) -> SyntheticVideo:
    """Write :func:`render_two_faces` to ``path``; ``truth`` is the astronaut's face."""
    clip, truth_a, truth_b = render_two_faces(frames=frames, hidden=hidden)
    write_video(path, clip, fps)
    return SyntheticVideo(Path(path), truth_a, (768, 512), fps, tuple(sorted(hidden)), truth_b)


def make_blink(
    base: np.ndarray,
    *,
    frames: int = 60,
    start: int = 30,
    profile: Sequence[float] = (0.5, 1.0, 1.0, 0.5),
    depth: float | None = None,
    jitter: float = 0.6,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A static face with a blink and per-frame jitter (for smoothing tests).

    Returns ``(noisy [M, 68, 2], clean [M, 68, 2], depth)``: during ``profile`` (fractions of a
    full closure, one per frame) the upper lids (37, 38, 43, 44) move down and the lower lids
    (40, 41, 46, 47) up by half of ``depth`` (default: the eye opening, so the eye closes).
    ``jitter`` is the standard deviation of independent Gaussian noise per coordinate (px).
    """
    clean = np.repeat(np.asarray(base, dtype=np.float64)[None], frames, axis=0)
    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    if depth is None:
        depth = float(np.mean(base[lower, 1] - base[upper, 1]))
    for i, f in enumerate(profile):
        clean[start + i, upper, 1] += 0.5 * depth * f
        clean[start + i, lower, 1] -= 0.5 * depth * f
    rng = np.random.default_rng(seed)
    noisy = clean + rng.normal(0.0, jitter, clean.shape)
    return noisy, clean, depth


def eye_opening(points: np.ndarray) -> np.ndarray:
    """Mean lid gap per frame (lower lid minus upper lid, px) of ``[M, 68, 2]``."""
    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    return (points[:, lower, 1] - points[:, upper, 1]).mean(axis=1)
