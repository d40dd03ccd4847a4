"""Driving-video landmark detection (pipeline step 1).

Start with :func:`detect_driving_landmarks`::

    from faceshot_core.detection import detect_driving_landmarks

    seq = detect_driving_landmarks("driving.mp4", smoothing="one_euro", progress="rich")
    seq.points      # [M, 68, 2] float32, the video's pixel coordinates
    seq.flags       # True where no face was found and the frame was interpolated

Detectors: ``'dlib'`` (default; offline, CPU) and ``'fan'`` (the paper's facexlib RetinaFace +
AWing FAN; ``pip install 'faceshot[fan]'`` and its weights), both behind the
:class:`FaceDetector` protocol and registered through the ``register_detectors`` plugin hook
(:mod:`faceshot_core.detection.registry`), so a plugin adds a third one the same way.

Importing this package does not import dlib or torch; detectors load on first use.
"""

from faceshot_core.detection.base import Box, FaceDetector
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
    OneEuroFilter,
    OneEuroParams,
    smooth_points,
    smooth_sequence,
)
from faceshot_core.detection.tracking import FaceTracker, TrackerStats

__all__ = [
    "Box",
    "DlibDetector",
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
    "register_detector",
    "smooth_points",
    "smooth_sequence",
    "wflw98_to_ibug68",
]
