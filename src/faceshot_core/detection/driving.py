"""Driving landmarks for a whole video, with an opt-in cache: pipeline step 1.

:func:`detect_driving_landmarks` streams the video (one frame in memory at a time), follows one
face with :class:`~faceshot_core.detection.tracking.FaceTracker` (which one, when there are
several: ``face=``, :mod:`~faceshot_core.detection.choice`), fills and flags frames without
a face (:mod:`~faceshot_core.detection.gaps`), smooths (:mod:`~faceshot_core.detection.smoothing`;
on by default, ``smoothing=None`` for the raw detections), and returns a
:class:`~faceshot_core.landmarks.LandmarkSequence` in the video's pixel coordinates, at its fps.

Reuse (LivePortrait calls these motion templates): with ``cache_dir=`` the detection result is
stored there as ``<video stem>.<key>.npz`` and read back on the next call with the same video
*content* (SHA-256 of the file, so renaming or touching the file does not matter, re-encoding
does), detector, detector settings and face choice.  Nothing is written unless ``cache_dir`` is
given, and never next to the video unless that is the folder you name.  The cache holds the
unsmoothed detections; smoothing is re-applied on load (it takes milliseconds), so changing
smoothing parameters reuses the cache.  Any sequence can also be saved explicitly with
:func:`faceshot_core.landmark_files.save_landmarks`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from faceshot_core.detection.base import FaceDetector
from faceshot_core.detection.choice import FaceChoice, check_face_choice, face_choice_key
from faceshot_core.detection.gaps import fill_gaps
from faceshot_core.detection.registry import get_detector
from faceshot_core.detection.smoothing import (
    DEFAULT_SMOOTHING,
    SmoothingSpec,
    resolve_smoothing,
    smooth_sequence,
)
from faceshot_core.detection.tracking import FaceTracker
from faceshot_core.errors import FaceshotError
from faceshot_core.landmark_files import load_sequence, save_landmarks
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.progress import ProgressSink, progress_display, report
from faceshot_core.video import iter_frames, probe_video

#: Bump when the detection code changes what it returns, to invalidate old cache entries.
#: 2: the tracker holds its box (steady_band), dlib averages an ensemble of fits.
CACHE_VERSION = 2

ProgressSpec = None | bool | Literal["rich"] | ProgressSink


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content, hex (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_path(
    video_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    detector: FaceDetector,
    *,
    track: bool = True,
    redetect_every: int | None = None,
    face: FaceChoice = "auto",
) -> Path:
    """Where :func:`detect_driving_landmarks` keeps the result for these inputs."""
    settings = (
        f"v{CACHE_VERSION}|{file_digest(video_path)}|{detector.cache_key()}|"
        f"track={track}|redetect={redetect_every}|face={face_choice_key(check_face_choice(face))}"
    )
    key = hashlib.sha256(settings.encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{Path(video_path).stem}.{key}.npz"


def detect_driving_landmarks(
    video_path: str | os.PathLike[str],
    *,
    detector: FaceDetector | str | None = None,
    track: bool = True,
    smoothing: SmoothingSpec = DEFAULT_SMOOTHING,
    progress: ProgressSpec = None,
    cache_dir: str | os.PathLike[str] | None = None,
    redetect_every: int | None = None,
    face: FaceChoice = "auto",
) -> LandmarkSequence:
    """68-point landmarks of the driving face in every frame of ``video_path``.

    Parameters:
        detector: a :class:`~faceshot_core.detection.base.FaceDetector`, a registered name
            (``'dlib'``, ``'fan'``), or ``None`` for the offline default (dlib).
        track: follow the face from frame to frame (fast); ``False`` detects on every frame.
        smoothing: ``'one_euro'`` (default; the tuned
            :class:`~faceshot_core.detection.smoothing.OneEuroParams`, zero-lag: jitter down to
            about a quarter, blinks and mouth openings kept; ``True`` means the same), ``None``
            or ``False`` (off: the raw detections), or One-Euro parameters
            (:class:`~faceshot_core.detection.smoothing.OneEuroParams` or a dict).
        progress: ``None``/``False`` (silent), ``True``/``'rich'`` (a rich progress bar on
            stderr), or a :data:`~faceshot_core.progress.ProgressSink` that receives
            ``ProgressEvent("detecting", done, total)`` after each frame.
        cache_dir: opt-in cache folder (created if needed); see the module docstring.
        redetect_every: also search the whole frame every N frames when tracking.
        face: which face to follow when the video shows several: ``'auto'`` (default: large
            and central), ``'largest'``, an index counted from 0 left to right among the faces
            of the first frame with any face, or a point ``(x, y)`` in video pixels (the face
            containing or nearest it); see :mod:`~faceshot_core.detection.choice`.

    Returns a sequence with ``image_size`` = the video's size, ``fps`` = its frame rate and
    ``interpolated`` flags on frames where no face was found (filled from their neighbours).
    Raises :class:`~faceshot_core.errors.NoFaceError` when no frame has a face,
    :class:`~faceshot_core.errors.MediaError` for an unreadable video and
    :class:`~faceshot_core.detection.choice.FaceChoiceError` for an invalid ``face`` or an
    index beyond the faces found.
    """
    face = check_face_choice(face)
    params = resolve_smoothing(smoothing)
    info = probe_video(video_path)
    det = _resolve_detector(detector)
    source = str(info.path)

    cached: Path | None = None
    if cache_dir is not None:
        cached = cache_path(
            info.path, cache_dir, det, track=track, redetect_every=redetect_every, face=face
        )
        hit = _read_cache(cached, info.size)
        if hit is not None:
            if callable(progress) and not isinstance(progress, bool):
                report(progress, "detecting", len(hit), len(hit))
            return smooth_sequence(hit, params) if params else hit

    tracker = FaceTracker(det, track=track, redetect_every=redetect_every, face=face)
    results: list[np.ndarray | None] = []
    with _progress(progress, info.frame_count, info.path.name) as step:
        for frame in iter_frames(info.path):
            results.append(tracker.update(frame))
            step(len(results))
    points, filled = fill_gaps(results, source=f"{source} (detector {det.name!r})")
    sequence = LandmarkSequence(points, info.size, info.fps, filled, source=source)

    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_landmarks(cached, sequence)
        except (OSError, FaceshotError) as exc:
            warnings.warn(f"could not write landmark cache {cached}: {exc}", stacklevel=2)
    return smooth_sequence(sequence, params) if params else sequence


def _resolve_detector(detector: FaceDetector | str | None) -> FaceDetector:
    if detector is None:
        return get_detector()
    if isinstance(detector, str):
        return get_detector(detector)
    return detector


def _read_cache(path: Path, size: tuple[int, int]) -> LandmarkSequence | None:
    """A valid cached sequence for a video of ``size``, or ``None`` (missing or unusable).

    The key, not the video's name, identifies an entry: a renamed copy of a video finds the
    entry written under its old name.
    """
    if not path.is_file():
        key = path.name.rsplit(".", 2)[-2]
        found = sorted(path.parent.glob(f"*.{key}.npz")) if path.parent.is_dir() else []
        if not found:
            return None
        path = found[0]
    try:
        sequence = load_sequence(path)
    except FaceshotError as exc:
        warnings.warn(f"ignoring unreadable landmark cache {path}: {exc}", stacklevel=3)
        return None
    if sequence.image_size != size:
        return None
    return LandmarkSequence(
        sequence.points, sequence.image_size, sequence.fps, sequence.flags, source=str(path)
    )


@contextlib.contextmanager
def _progress(spec: ProgressSpec, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A ``step(frames_done)`` function that reports to what ``spec`` asks for."""
    if spec is None or spec is False:
        yield lambda done: None
        return
    if spec is True or spec == "rich":
        with progress_display(transient=True) as display:
            yield lambda done: report(display, f"landmarks: {label}", done, max(total, done))
        return
    if callable(spec):
        sink = spec
        yield lambda done: report(sink, "detecting", done, max(total, done))
        return
    raise TypeError(f"progress must be None, True, 'rich' or a callable, got {spec!r}")
