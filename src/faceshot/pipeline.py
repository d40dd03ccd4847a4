"""The steps of the FaceShot pipeline as plain functions (the public Python API).

Each step takes paths or arrays and returns the core's landmark types, so a script can stop at
any step, save what it has (``faceshot_core.landmark_files.save_landmarks``) and resume later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from faceshot_core.detection import FaceDetector, detect_driving_landmarks, get_detector
from faceshot_core.errors import NoFaceError
from faceshot_core.images import load_image
from faceshot_core.landmark_files import SUFFIXES, load_face, load_sequence
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.retarget import retarget

Progress = Callable[[int, int | None], None]
PathLike = str | os.PathLike[str]


def make_detector(name: str | FaceDetector = "dlib", **options: object) -> FaceDetector:
    """A detector by name (``"dlib"``, ``"fan"``) or pass one through unchanged."""
    return get_detector(name, **options) if isinstance(name, str) else name


def detect_reference(
    image: PathLike | np.ndarray, *, detector: str | FaceDetector = "dlib", source: str = "image"
) -> FaceLandmarks:
    """68 landmarks of the largest face in a still image; :class:`NoFaceError` if none.

    Human-like faces only: for animals, toys or anime, give landmarks by hand or use the
    appearance-guided matcher.
    """
    if not isinstance(image, np.ndarray):
        source = str(image)
        image = load_image(image)
    det = make_detector(detector)
    boxes = det.detect(image)
    if not boxes:
        raise NoFaceError(
            f"{source}: no face found by the {getattr(det, 'name', 'face')} detector; supply the "
            "character's 68 landmarks with --reference-landmarks (JSON, .npy, .pts or .txt)"
        )
    box = max(boxes, key=lambda b: b.area)
    height, width = image.shape[:2]
    return FaceLandmarks(det.landmarks(image, box), (width, height), source=source)


def load_driving(
    driving: PathLike,
    *,
    detector: str | FaceDetector = "dlib",
    smoothing: str | None = None,
    cache_dir: PathLike | None = None,
    progress: Progress | None = None,
) -> LandmarkSequence:
    """Driving landmarks from a saved landmark file (``.npz``, ``.json`` ...) or a video."""
    path = Path(driving)
    if path.suffix.lower() in SUFFIXES:
        return load_sequence(path)
    return detect_driving_landmarks(
        path,
        detector=make_detector(detector),
        smoothing=smoothing,
        cache_dir=cache_dir,
        progress=progress,
    )


def load_reference(
    landmarks: PathLike | None = None,
    *,
    image: PathLike | None = None,
    detector: str | FaceDetector = "dlib",
) -> FaceLandmarks:
    """Reference landmarks: the user's file first, else detection on ``image``."""
    if landmarks is not None:
        size = None
        if image is not None:
            h, w = load_image(image).shape[:2]
            size = (w, h)
        return load_face(landmarks, image_size=size)
    if image is None:
        raise NoFaceError("give reference landmarks or a reference image to detect them on")
    return detect_reference(image, detector=detector)


def reposed_sequence(
    reference: FaceLandmarks,
    driving: LandmarkSequence,
    *,
    parts: Sequence[str] | None = None,
    head_translation: str = "face",
) -> LandmarkSequence:
    """The character's landmarks following the driving motion (coordinate-based retargeting).

    See :func:`faceshot_core.retarget.retarget_points` for ``parts`` and ``head_translation``.
    """
    return retarget(reference, driving, parts=parts, head_translation=head_translation)
