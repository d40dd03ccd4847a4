"""``faceshot.run``: from a character image and a driving video to an animated mp4.

The one call a user needs, built from the public steps of :mod:`faceshot.pipeline` and
:mod:`faceshot.animate` (the CLI uses the same).  Cheap mistakes fail first: every output path
and every setting is checked, then the backend (its options, the device, its weight files),
and only then is any work done.  A loaded backend can be passed in (``animator=``, from
:func:`load_animator`) and reused for many runs; otherwise one is loaded for this run and
closed afterwards.  Nothing is written when any step fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceshot.animate import OutputPaths, animate, check_frame_limits
from faceshot.pipeline import is_landmark_file, load_driving, reference_landmarks
from faceshot.settings import RunSettings
from faceshot_backends.contract import Animator
from faceshot_backends.loading import ensure_ready, load_backend, resolve_runtime
from faceshot_backends.registry import get_backend
from faceshot_core.atomic import check_output_path
from faceshot_core.images import load_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import DEFAULT_FPS, FaceLandmarks, LandmarkSequence
from faceshot_core.progress import ProgressSink
from faceshot_core.retarget import repair_reference, retarget
from faceshot_core.video import probe_has_audio, probe_video

PathLike = str | os.PathLike[str]


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
    device: str = "cpu"
    dtype: str = "float32"
    timings: dict[str, float] = field(default_factory=dict)


def load_animator(
    backend: str | type[Any] = "warp",
    options: Mapping[str, Any] | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    progress: ProgressSink | None = None,
) -> Animator:
    """Load a backend once (by name or class) to animate many clips; use it with ``with``.

    ::

        with faceshot.load_animator("warp") as animator:
            for clip in clips:
                faceshot.run("cat.png", clip, output=..., animator=animator, backend="warp")
    """
    cls = get_backend(backend) if isinstance(backend, str) else backend
    return load_backend(cls, options, device=device, dtype=dtype, progress=progress)


def run(
    reference: PathLike | np.ndarray,
    driving: PathLike,
    *,
    output: PathLike,
    options: Mapping[str, Any] | None = None,
    animator: Animator | None = None,
    progress: ProgressSink | None = None,
    settings: RunSettings | None = None,
    **setting_values: Any,
) -> RunResult:
    """Animate ``reference`` (image path or RGB array) with the motion of ``driving``.

    ``driving`` is a video, or landmarks saved by ``faceshot detect``.  Settings (see
    :class:`~faceshot.settings.RunSettings`: ``backend``, ``reference_landmarks``, ``compare``,
    ``overlay``, ``device``, ``dtype``, ``seed``, ``detector``, ``smoothing``, ``face``, ``parts``,
    ``motion``, ``head_motion``,
    ``head_translation``, ``max_frames``, ``match``, ``matching``, ``cache_dir``,
    ``overwrite``) come as keyword arguments or a ``settings`` object; the backend's own
    options as ``options={...}``.  Writes ``output`` (mp4 at the driving fps with its audio),
    ``<stem>_landmarks.npz`` (the reposed sequence, in reference-image pixels) and, when asked,
    ``<stem>_compare.mp4`` (driving | reference | result) and ``<stem>_overlay.mp4``.
    ``progress`` receives :class:`~faceshot_core.progress.ProgressEvent` objects.
    """
    started = time.perf_counter()
    cfg = settings or RunSettings()
    if setting_values:  # keyword arguments override the settings object, validated together
        cfg = RunSettings.from_mapping({**dict(cfg), **setting_values})
    timings: dict[str, float] = {}
    paths = OutputPaths.for_output(output, compare=cfg.compare, overlay=cfg.overlay)
    for path in paths.all():
        check_output_path(path, overwrite=cfg.overwrite)

    backend_cls = get_backend(cfg.backend)
    runtime = resolve_runtime(backend_cls, device=cfg.device, dtype=cfg.dtype, seed=cfg.seed)
    opts = backend_cls.parse_options(options)
    if animator is None:  # check readiness now: before the detector spends minutes on a video
        ensure_ready(backend_cls, opts, runtime.device)
    driving_video = None if is_landmark_file(driving) else Path(driving)
    if driving_video is not None:
        probe_video(driving_video)  # a clear error for a bad video before any work

    t = time.perf_counter()
    image = reference if isinstance(reference, np.ndarray) else load_image(reference)
    ref, ref_source = reference_landmarks(
        image, landmarks=cfg.reference_landmarks, detector=cfg.detector, match=cfg.match,
        matching=cfg.matching,
        source="reference image" if isinstance(reference, np.ndarray) else str(reference),
    )  # fmt: skip
    ref = repair_reference(ref)  # what frame 0 of the reposed sequence is (swapped labels fixed)
    timings["reference_landmarks"] = time.perf_counter() - t

    t = time.perf_counter()
    motion = load_driving(driving, detector=cfg.detector, smoothing=cfg.smoothing, face=cfg.face,
                          cache_dir=cfg.cache_dir, progress=progress)  # fmt: skip
    if cfg.max_frames is not None and len(motion) > cfg.max_frames:
        motion = LandmarkSequence(motion.points[: cfg.max_frames], motion.image_size, motion.fps,
                                  motion.flags[: cfg.max_frames], source=motion.source)  # fmt: skip
    timings["driving_landmarks"] = time.perf_counter() - t
    check_frame_limits(backend_cls, len(motion))

    t = time.perf_counter()
    sequence = retarget(ref, motion, parts=cfg.parts, head_translation=cfg.head_translation,
                        head_motion=cfg.head_motion, strength=cfg.motion)  # fmt: skip
    timings["retarget"] = time.perf_counter() - t

    fps = motion.fps or DEFAULT_FPS
    audio = driving_video if driving_video is not None and probe_has_audio(driving_video) else None
    with ExitStack() as stack:
        t = time.perf_counter()
        if animator is None:
            animator = stack.enter_context(load_backend(
                backend_cls, opts, device=runtime.device, dtype=runtime.dtype, progress=progress,
            ))  # fmt: skip
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        frames, _ = animate(
            animator, backend_cls, image, ref, sequence, paths, runtime=runtime, fps=fps,
            driving=motion, driving_video=driving_video, audio=audio, overwrite=cfg.overwrite,
            progress=progress,
        )  # fmt: skip
        timings["animate_and_encode"] = time.perf_counter() - t
    save_landmarks(paths.landmarks, sequence, overwrite=cfg.overwrite)
    timings["total"] = time.perf_counter() - started
    return RunResult(
        output=paths.video, landmarks_file=paths.landmarks, compare=paths.compare,
        overlay=paths.overlay, backend=cfg.backend, reference_landmarks=ref,
        reference_source=ref_source, driving=motion, sequence=sequence, frames=frames, fps=fps,
        device=runtime.device, dtype=runtime.dtype, timings=timings,
    )  # fmt: skip
