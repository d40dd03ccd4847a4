"""The steps of the FaceShot pipeline as public functions; ``faceshot.run`` and the CLI use them.

1. :func:`load_driving` - the driving motion: landmarks detected on a video (or loaded from a
   file saved by ``faceshot detect``);
2. :func:`reference_landmarks` - the character's 68 points: the user's file, else a face
   detector, else the appearance-guided matcher (or the matcher first, on request);
3. :func:`retarget` - the reposed sequence (:func:`faceshot_core.retarget.retarget`);
4. :func:`faceshot.animate.animate` - a loaded backend renders it into video files.

Each step takes paths or arrays and returns the core's landmark types, so a script can stop at
any step, save what it has (:func:`faceshot_core.landmark_files.save_landmarks`) and resume.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from faceshot.matching_api import GALLERY_ENV, MatchSettings, match_landmarks
from faceshot_core.detection import FaceDetector, detect_driving_landmarks, get_detector
from faceshot_core.detection.choice import FaceChoice
from faceshot_core.errors import NoFaceError
from faceshot_core.images import load_image
from faceshot_core.landmark_files import SUFFIXES, load_face, load_sequence
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.progress import ProgressSink
from faceshot_core.retarget import retarget

PathLike = str | os.PathLike[str]

__all__ = [
    "detect_reference",
    "is_landmark_file",
    "load_driving",
    "make_detector",
    "reference_landmarks",
    "retarget",
]

NO_FACE_HINT = (
    "supply the character's 68 landmarks with --reference-landmarks FILE (faceshot JSON, .npy, "
    ".pts or .txt; see docs/landmark-format.md), or match them with --gallery DIR (the "
    "appearance-guided matcher)"
)


def make_detector(name: str | FaceDetector = "dlib", **options: object) -> FaceDetector:
    """A registered detector by name (``"dlib"``, ``"fan"``, a plugin's) or one passed through."""
    return get_detector(name, **options) if isinstance(name, str) else name


def detect_reference(
    image: PathLike | np.ndarray, *, detector: str | FaceDetector = "dlib", source: str = "image"
) -> FaceLandmarks:
    """68 landmarks of the largest face in a still image; :class:`NoFaceError` if none.

    Human-like faces only: for animals, toys or anime, give landmarks by hand or use the
    appearance-guided matcher.  The error names the detector; callers add their own hint.
    """
    if not isinstance(image, np.ndarray):
        source = str(image)
        image = load_image(image)
    det = make_detector(detector)
    boxes = det.detect(image)
    if not boxes:
        raise NoFaceError(f"{source}: no face found by the {getattr(det, 'name', 'face')} detector")
    box = max(boxes, key=lambda b: b.area)
    height, width = image.shape[:2]
    return FaceLandmarks(det.landmarks(image, box), (width, height), source=source)


def is_landmark_file(path: PathLike) -> bool:
    """Whether ``path`` names saved landmarks (by suffix) rather than a video."""
    return Path(path).suffix.lower() in SUFFIXES


def load_driving(
    driving: PathLike,
    *,
    detector: str | FaceDetector = "dlib",
    smoothing: str | None = "one_euro",
    face: FaceChoice = "auto",
    cache_dir: PathLike | None = None,
    progress: ProgressSink | None = None,
) -> LandmarkSequence:
    """Driving landmarks from a saved landmark file (``.npz``, ``.json`` ...) or a video.

    ``smoothing`` (zero-lag One-Euro by default, ``None`` for the raw detections) and ``face``
    (which face drives, see :mod:`faceshot_core.detection.choice`) apply to videos only.
    """
    if is_landmark_file(driving):
        return load_sequence(driving)
    return detect_driving_landmarks(
        driving,
        detector=make_detector(detector),
        smoothing=smoothing,
        face=face,
        cache_dir=cache_dir,
        progress=progress,
    )


def reference_landmarks(
    image: np.ndarray,
    *,
    landmarks: PathLike | None = None,
    detector: str | FaceDetector = "dlib",
    match: bool = False,
    matching: MatchSettings | None = None,
    source: str = "reference image",
) -> tuple[FaceLandmarks, str]:
    """The character's landmarks and where they came from: ``file``, ``detector``, ``matcher``.

    Order: the user's file; the matcher when ``match``; else the detector, falling back to the
    matcher when no face is found and a gallery is configured (``matching.gallery`` or
    ``$FACESHOT_GALLERY``).
    """
    h, w = image.shape[:2]
    if landmarks is not None:
        return load_face(landmarks, image_size=(w, h)), "file"
    settings = matching or MatchSettings()
    if match:
        return _matched(image, source, settings), "matcher"
    try:
        return detect_reference(image, detector=detector, source=source), "detector"
    except NoFaceError as exc:
        if settings.gallery or os.environ.get(GALLERY_ENV):
            return _matched(image, source, settings), "matcher"
        raise NoFaceError(f"{exc}, and no reference landmarks given; {NO_FACE_HINT}") from None


def _matched(image: np.ndarray, source: str, settings: MatchSettings) -> FaceLandmarks:
    result = match_landmarks(image, settings)
    return FaceLandmarks(result.landmarks.points, result.landmarks.image_size, source=source)
