"""``faceshot.run``: from a character image and a driving video to an animated mp4.

The one call a user needs.  It validates every output path before any work, finds the
reference landmarks (the user's file, else the detector), detects or loads the driving
landmarks, retargets them, streams the backend's frames into the video (and, on request, a
side-by-side comparison and a landmark overlay, all in the same pass), muxes the driving
video's audio, and saves the reposed sequence beside the output.  Nothing is written when any
step fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceshot.matching_api import GALLERY_ENV, MatchSettings, match_landmarks
from faceshot.pipeline import detect_reference
from faceshot_backends.contract import (
    AnimationRequest,
    BackendNotReadyError,
    BackendOptionError,
    resize_frame,
)
from faceshot_core.atomic import check_output_path
from faceshot_core.detection import detect_driving_landmarks
from faceshot_core.errors import NoFaceError
from faceshot_core.images import load_image
from faceshot_core.landmark_files import SUFFIXES, load_face, load_sequence, save_landmarks
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.plugins import backend_registry
from faceshot_core.render import draw_landmarks, pose_image
from faceshot_core.retarget import retarget
from faceshot_core.video import VideoWriter, iter_frames, probe_has_audio, probe_video

PathLike = str | os.PathLike[str]
Progress = Callable[[str, int, int | None], None]
DEFAULT_FPS = 25.0


@dataclass
class RunResult:
    """What :func:`run` produced, and how long each step took (seconds)."""

    output: Path
    landmarks_file: Path
    compare: Path | None
    overlay: Path | None
    backend: str
    reference_landmarks: FaceLandmarks
    reference_source: str  # "file", "detector" or "matcher"
    driving: LandmarkSequence
    sequence: LandmarkSequence
    frames: int
    fps: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputPaths:
    """Every file a run writes, derived from the main output's name."""

    video: Path
    landmarks: Path
    compare: Path | None
    overlay: Path | None

    @classmethod
    def for_output(cls, output: PathLike, *, compare: bool, overlay: bool) -> OutputPaths:
        out = Path(output)
        if out.suffix.lower() != ".mp4":
            raise BackendOptionError(f"output {out} must be an .mp4 file")
        stem = out.with_suffix("")
        return cls(
            video=out,
            landmarks=Path(f"{stem}_landmarks.npz"),
            compare=Path(f"{stem}_compare.mp4") if compare else None,
            overlay=Path(f"{stem}_overlay.mp4") if overlay else None,
        )

    def all(self) -> list[Path]:
        return [p for p in (self.video, self.landmarks, self.compare, self.overlay) if p]


def _reference_landmarks(
    image: np.ndarray,
    image_path: PathLike | None,
    landmarks: PathLike | None,
    detector: str,
    match: bool,
    matching: MatchSettings | None,
) -> tuple[FaceLandmarks, str]:
    """The character's landmarks and where they came from: file, detector or matcher.

    Order: the user's file; the matcher when asked; else the detector, falling back to the
    matcher when no face is found and a gallery is configured.
    """
    h, w = image.shape[:2]
    source = str(image_path) if image_path is not None else "reference image"
    if landmarks is not None:
        return load_face(landmarks, image_size=(w, h)), "file"
    if match:
        return _matched(image, source, matching or MatchSettings()), "matcher"
    try:
        return detect_reference(image, detector=detector, source=source), "detector"
    except NoFaceError:
        settings = matching or MatchSettings()
        if settings.gallery or os.environ.get(GALLERY_ENV):
            return _matched(image, source, settings), "matcher"
        raise NoFaceError(
            f"{source}: no face found by the {detector} detector, and no reference landmarks "
            "given; supply the character's 68 landmarks with --reference-landmarks FILE "
            "(faceshot JSON, .npy, .pts or .txt; see docs/landmark-format.md), or match them "
            "with --gallery DIR (the appearance-guided matcher)"
        ) from None


def _matched(image: np.ndarray, source: str, settings: MatchSettings) -> FaceLandmarks:
    result = match_landmarks(image, settings)
    return FaceLandmarks(result.landmarks.points, result.landmarks.image_size, source=source)


def _driving(
    driving: PathLike,
    detector: str,
    smoothing: str | None,
    cache_dir: PathLike | None,
    progress: Progress | None,
) -> tuple[LandmarkSequence, Path | None]:
    """Driving landmarks and the driving video (``None`` when given saved landmarks)."""
    path = Path(driving)
    if path.suffix.lower() in SUFFIXES:
        return load_sequence(path), None
    probe_video(path)  # a clear error for unreadable or zero-frame videos, before any work
    bar = (lambda e: progress(e.stage, e.done, e.total)) if progress else None
    seq = detect_driving_landmarks(
        path, detector=detector, smoothing=smoothing, cache_dir=cache_dir, progress=bar
    )
    return seq, path


def _check_frame_limits(backend: str, frames: int, min_frames: int, max_frames: int | None) -> None:
    if frames < min_frames:
        raise BackendOptionError(
            f"backend {backend!r} needs at least {min_frames} frames; the driving has {frames}"
        )
    if max_frames is not None and frames > max_frames:
        raise BackendOptionError(
            f"backend {backend!r} handles at most {max_frames} frames and the driving has "
            f"{frames}; use max_frames={max_frames} (--max-frames) to animate the first part"
        )


def _panel(frame: np.ndarray, height: int) -> np.ndarray:
    h, w = frame.shape[:2]
    width = max(2, round(w * height / h / 2) * 2)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _driving_frames(video: Path | None, driving: LandmarkSequence) -> Iterator[np.ndarray]:
    """The driving video's frames, or its landmarks drawn as pose images when there is none."""
    if video is not None:
        yield from iter_frames(video)
    else:
        for points in driving.points:
            yield pose_image(points, driving.image_size)


def run(
    reference: PathLike | np.ndarray,
    driving: PathLike,
    *,
    output: PathLike,
    backend: str = "warp",
    reference_landmarks: PathLike | None = None,
    match: bool = False,
    matching: MatchSettings | None = None,
    compare: bool = False,
    overlay: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    seed: int = 0,
    detector: str = "dlib",
    smoothing: str | None = None,
    parts: list[str] | None = None,
    head_translation: str = "face",
    max_frames: int | None = None,
    cache_dir: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    options: Mapping[str, Any] | None = None,
    **backend_options: Any,
) -> RunResult:
    """Animate ``reference`` (image path or RGB array) with the motion of ``driving``.

    ``driving`` is a video, or landmarks saved by ``faceshot detect``.  ``backend`` names a
    registered backend (``faceshot backends`` lists them); its own options come as keyword
    arguments or ``options={...}`` and are validated by the backend.  Writes ``output`` (mp4 at
    the driving fps with its audio), ``<stem>_landmarks.npz`` (the reposed sequence) and, when
    asked, ``<stem>_compare.mp4`` (driving | reference | result) and ``<stem>_overlay.mp4``.
    ``progress(stage, done, total)`` is called as work advances.

    The character's landmarks come from ``reference_landmarks`` (a file), else from the
    appearance-guided matcher when ``match`` is true, else from the face detector, falling back
    to the matcher when no face is found and a gallery is configured (``matching.gallery`` or
    ``$FACESHOT_GALLERY``); ``matching`` says where the matcher's gallery and weights are.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    paths = OutputPaths.for_output(output, compare=compare, overlay=overlay)
    for path in paths.all():
        check_output_path(path, overwrite=overwrite)
    if max_frames is not None and max_frames < 1:
        raise BackendOptionError(f"max_frames must be at least 1, got {max_frames}")

    entry = backend_registry().get(backend)
    animator = entry.cls()
    opts = animator.parse_options({**(options or {}), **backend_options})
    readiness = animator.check(opts)
    if not readiness.ready:
        raise BackendNotReadyError(f"backend {backend!r} is not ready: {readiness.summary()}")

    t = time.perf_counter()
    image = reference if isinstance(reference, np.ndarray) else load_image(reference)
    image_path = None if isinstance(reference, np.ndarray) else reference
    ref, ref_source = _reference_landmarks(
        image, image_path, reference_landmarks, detector, match, matching
    )
    timings["reference_landmarks"] = time.perf_counter() - t

    t = time.perf_counter()
    motion, video = _driving(driving, detector, smoothing, cache_dir, progress)
    if max_frames is not None and len(motion) > max_frames:
        motion = LandmarkSequence(motion.points[:max_frames], motion.image_size, motion.fps,
                                  motion.flags[:max_frames], source=motion.source)  # fmt: skip
    timings["driving_landmarks"] = time.perf_counter() - t
    reqs = entry.cls.requirements
    _check_frame_limits(backend, len(motion), reqs.min_frames, reqs.max_frames)

    t = time.perf_counter()
    sequence = retarget(ref, motion, parts=parts, head_translation=head_translation)
    timings["retarget"] = time.perf_counter() - t

    fps = motion.fps or DEFAULT_FPS
    request = AnimationRequest(
        reference_image=image, reference_landmarks=ref.points, sequence=sequence.points,
        fps=fps, seed=seed, device=device, dtype=dtype, options=opts,
    )  # fmt: skip
    audio = video if video is not None and probe_has_audio(video) else None
    t = time.perf_counter()
    frames = _write_videos(animator, request, paths, motion, video, audio, overwrite, progress)
    timings["animate_and_encode"] = time.perf_counter() - t
    save_landmarks(paths.landmarks, sequence, overwrite=overwrite)
    timings["total"] = time.perf_counter() - started
    return RunResult(
        output=paths.video, landmarks_file=paths.landmarks, compare=paths.compare,
        overlay=paths.overlay, backend=backend, reference_landmarks=ref,
        reference_source=ref_source, driving=motion,
        sequence=sequence, frames=frames, fps=fps, timings=timings,
    )  # fmt: skip


def _write_videos(
    animator: Any,
    request: AnimationRequest,
    paths: OutputPaths,
    motion: LandmarkSequence,
    video: Path | None,
    audio: Path | None,
    overwrite: bool,
    progress: Progress | None,
) -> int:
    """Stream the backend's frames into every requested video in one pass; frames written."""
    total = request.num_frames
    out_w, out_h = request.size
    h, w = request.reference_image.shape[:2]
    scale = np.array([out_w / w, out_h / h], dtype=np.float32)
    with ExitStack() as stack:
        main = stack.enter_context(VideoWriter(paths.video, request.fps, audio_from=audio,
                                               overwrite=overwrite))  # fmt: skip
        side = (stack.enter_context(VideoWriter(paths.compare, request.fps, audio_from=audio,
                                                overwrite=overwrite))
                if paths.compare else None)  # fmt: skip
        lms = (stack.enter_context(VideoWriter(paths.overlay, request.fps, overwrite=overwrite))
               if paths.overlay else None)  # fmt: skip
        drive = _driving_frames(video, motion) if side is not None else None
        ref_panel = _panel(request.reference_image, out_h) if side is not None else None
        frames = animator.animate(request)
        count = 0
        for m, frame in enumerate(frames):
            if m >= total:
                break
            frame = resize_frame(np.asarray(frame, dtype=np.uint8), (out_w, out_h))
            main.write(frame)
            if side is not None and drive is not None:
                driving_frame = next(drive, None)
                if driving_frame is None:  # the video decoded fewer frames than it declared
                    driving_frame = pose_image(motion.points[m], motion.image_size)
                side.write(np.concatenate([_panel(driving_frame, out_h), ref_panel, frame], 1))
            if lms is not None:
                lms.write(draw_landmarks(frame, request.sequence[m] * scale))
            count += 1
            if progress is not None:
                progress("animating", count, total)
        if count != total:
            raise RuntimeError(  # a bug in the backend, not the user's mistake: keep the traceback
                f"backend produced {count} frames for a sequence of {total}; nothing was written"
            )
    return count
