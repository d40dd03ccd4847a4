"""Point tracking: do the result's faces sit where the reposed landmarks say they should?

The paper's Point-Tracking figure.  Landmarks are found again on the generated frames and
compared with the sequence the animator was given, frame by frame: the normalised mean error
(NME) is the mean distance over the 68 points divided by the reposed frame's inter-ocular
distance (outer eye corners 36 and 45, the 300-W convention), so 0.05 means the points are off
by 5 % of the eye span whatever the face's size.

Two trackers find the landmarks on the result:

* ``detector`` (default): the driving-video detector with its face tracking and no smoothing
  (:func:`faceshot_core.detection.detect_driving_landmarks`), for human-like results.  Frames
  where it finds no face are *counted* and left out of the NME, never filled in: a detector
  that loses the face is itself a finding about the result.
* ``matcher``: the appearance-guided matcher (:func:`faceshot.matching_api.match_landmarks`)
  for characters no detector handles, on every ``every``-th frame (it runs a diffusion model
  per frame).  It needs its weights and a gallery; without them this is one clear error, not a
  silent fallback to the detector, whose figure would mean something else.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceshot.evaluation.report import Figure, Series, measured, not_measured
from faceshot.matching_api import MatchSettings, load_models, match_landmarks
from faceshot.pipeline import make_detector
from faceshot_core.detection import FaceDetector, detect_driving_landmarks
from faceshot_core.errors import NoFaceError
from faceshot_core.progress import ProgressSink, StageReporter
from faceshot_core.video import iter_frames, probe_video

__all__ = [
    "ResultTracking",
    "detect_on_result",
    "match_on_result",
    "nme_per_frame",
    "outer_interocular",
    "tracking_figures",
]


@dataclass(frozen=True)
class ResultTracking:
    """Landmarks found on a result: ``points`` ``[M, 68, 2]`` (NaN where none), per-frame
    ``sampled`` (looked at) and ``found`` (a face was found), and the tracker's name."""

    points: np.ndarray
    sampled: np.ndarray
    found: np.ndarray
    tracker: str


def detect_on_result(
    video: str | os.PathLike[str],
    *,
    detector: str | FaceDetector = "dlib",
    progress: ProgressSink | None = None,
) -> ResultTracking:
    """The detector's raw (unsmoothed) landmarks on every frame of ``video``."""
    det = make_detector(detector)
    name = f"detector:{getattr(det, 'name', 'custom')}"
    try:
        seq = detect_driving_landmarks(video, detector=det, smoothing=None, progress=progress)
    except NoFaceError:
        frames = probe_video(video).frame_count
        empty = np.full((frames, 68, 2), np.nan)
        return ResultTracking(empty, np.ones(frames, bool), np.zeros(frames, bool), name)
    found = ~seq.flags
    points = np.where(found[:, None, None], seq.points.astype(np.float64), np.nan)
    return ResultTracking(points, np.ones(len(seq), bool), found, name)


def match_on_result(
    video: str | os.PathLike[str],
    frames: int,
    settings: MatchSettings,
    *,
    every: int = 1,
    models: tuple[Any, Any] | None = None,
    gallery: Any = None,
    progress: ProgressSink | None = None,
) -> ResultTracking:
    """The matcher's landmarks on frames ``0, every, 2 every ...`` of ``video``.

    The gallery is read, then the models loaded (``models``/``gallery`` may be passed in to
    reuse them), before any frame is decoded: a missing gallery or weight file is one
    :class:`~faceshot_core.errors.FaceshotUserError` saying what is missing.
    """
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    if gallery is None:
        from faceshot_core.matching.gallery import load_gallery

        gallery = load_gallery(settings.gallery_path())
    if models is None:
        models = load_models(settings)
    points = np.full((frames, 68, 2), np.nan)
    sampled = np.zeros(frames, bool)
    step = StageReporter(progress, "matching", math.ceil(frames / every))
    for m, frame in enumerate(iter_frames(video)):
        if m >= frames:
            break
        if m % every:
            continue
        match = match_landmarks(frame, settings, models=models, gallery=gallery)
        points[m] = match.landmarks.points
        sampled[m] = True
        step.step()
    return ResultTracking(points, sampled, sampled.copy(), f"matcher:every {every}")


def outer_interocular(points: np.ndarray) -> np.ndarray:
    """``[M]`` distance between the outer eye corners 36 and 45 (never below 1e-9)."""
    p = np.asarray(points, dtype=np.float64)
    return np.maximum(np.linalg.norm(p[:, 45] - p[:, 36], axis=-1), 1e-9)


def nme_per_frame(found: np.ndarray, reposed: np.ndarray) -> np.ndarray:
    """``[M]`` mean point distance / the reposed frame's outer inter-ocular distance (NaN
    where ``found`` has NaN points)."""
    ref = np.asarray(reposed, dtype=np.float64)
    error = np.linalg.norm(np.asarray(found, dtype=np.float64) - ref, axis=-1).mean(axis=1)
    return error / outer_interocular(ref)


def tracking_figures(
    tracking: ResultTracking, reposed: np.ndarray
) -> tuple[list[Figure], dict[str, Series]]:
    """The point-tracking figures and the per-frame NME series (sampled frames)."""
    nme = nme_per_frame(tracking.points, reposed)
    sampled = int(tracking.sampled.sum())
    missing = int((tracking.sampled & ~tracking.found).sum())
    compared = int(tracking.found.sum())
    frames = np.flatnonzero(tracking.sampled)
    series = {"point_tracking.nme": Series(frames=frames.tolist(), values=nme[frames].tolist())}
    counts = [
        measured("point_tracking.frames_without_face", missing),
        measured("point_tracking.no_face_share", missing / sampled if sampled else float("nan")),
        measured("point_tracking.frames_compared", compared),
    ]
    if compared == 0:
        kind, _, detail = tracking.tracker.partition(":")
        who = f"the {detail} detector" if kind == "detector" else "the matcher"
        why = f"no face found by {who} on any sampled frame"
        if kind == "detector":
            why += " (a character no detector handles? try the matcher tracker)"
        nmes = [not_measured("point_tracking.nme", why)]
        nmes.append(not_measured("point_tracking.nme_worst", why))
    else:
        values = nme[tracking.found]
        nmes = [
            measured("point_tracking.nme", float(values.mean())),
            measured("point_tracking.nme_worst", float(values.max())),
        ]
    return nmes + counts, series
