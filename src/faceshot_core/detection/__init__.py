"""Driving-video landmark detection (pipeline step 1).

Start with :func:`detect_driving_landmarks`::

    from faceshot_core.detection import detect_driving_landmarks

    seq = detect_driving_landmarks("driving.mp4", progress="rich")
    seq.points      # [M, 68, 2] float32, the video's pixel coordinates (smoothed by default)
    seq.flags       # True where no face was found and the frame was interpolated

    raw = detect_driving_landmarks("duet.mp4", smoothing=None, face=1)  # unsmoothed, 2nd face

How steady a sequence is (jitter, and the depth of blinks and mouth openings that smoothing
keeps) is measured by :mod:`faceshot_core.detection.stability`.

Detectors: ``'dlib'`` (default; offline, CPU) and ``'fan'`` (the paper's facexlib RetinaFace +
AWing FAN; ``pip install 'faceshot[fan]'`` and its weights), both behind the
:class:`FaceDetector` protocol and registered through the ``register_detectors`` plugin hook
(:mod:`faceshot_core.detection.registry`), so a plugin adds a third one the same way.

Importing this package does not import dlib or torch; detectors load on first use.
"""

from faceshot_core.detection.base import Box, FaceDetector
from faceshot_core.detection.choice import FaceChoice, FaceChoiceError, parse_face_choice
from faceshot_core.detection.dlib_detector import DlibDetector
from faceshot_core.detection.driving import cache_path, detect_driving_landmarks
from faceshot_core.detection.fan_detector import FanDetector, wflw98_to_ibug68
from faceshot_core.detection.gaps import fill_gaps
from faceshot_core.detection.registry import (
    available_detectors,
    detector_registry,
    get_detector,
    register_detector,
)
from faceshot_core.detection.smoothing import (
    DEFAULT_SMOOTHING,
    OneEuroFilter,
    OneEuroParams,
    smooth_points,
    smooth_sequence,
)
from faceshot_core.detection.tracking import FaceTracker, TrackerStats

__all__ = [
    "DEFAULT_SMOOTHING",
    "Box",
    "DlibDetector",
    "FaceChoice",
    "FaceChoiceError",
    "FaceDetector",
    "FaceTracker",
    "FanDetector",
    "OneEuroFilter",
    "OneEuroParams",
    "TrackerStats",
    "available_detectors",
    "cache_path",
    "detect_driving_landmarks",
    "detector_registry",
    "fill_gaps",
    "get_detector",
    "parse_face_choice",
    "register_detector",
    "smooth_points",
    "smooth_sequence",
    "wflw98_to_ibug68",
]
