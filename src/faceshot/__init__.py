"""faceshot: bring any character to life from a driving video (the FaceShot method).

One call animates a character (``faceshot run`` on the command line)::

    import faceshot
    result = faceshot.run("cat.png", "driving.mp4", output="cat.mp4", backend="warp",
                          reference_landmarks="cat.json")
    result.output, result.sequence.points, result.timings

and the steps are available on their own::

    import faceshot
    driving = faceshot.load_driving("driving.mp4")          # detect (or load saved) landmarks
    reference = faceshot.load_reference("cat.json")         # or image="person.png" to detect
    sequence = faceshot.reposed_sequence(reference, driving)
    faceshot.save_landmarks("reposed.npz", sequence)

Landmarks are iBUG 68-point, pixel (x, y) float32; see :mod:`faceshot_core.schema`.
"""

from faceshot.matching_api import MatchSettings, match_landmarks
from faceshot.pipeline import (
    detect_reference,
    load_driving,
    load_reference,
    make_detector,
    reposed_sequence,
)
from faceshot.runner import RunResult, run
from faceshot_core.landmark_files import load_landmarks, save_landmarks
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence

__version__ = "0.1.0"

__all__ = [
    "FaceLandmarks",
    "LandmarkSequence",
    "MatchSettings",
    "RunResult",
    "__version__",
    "detect_reference",
    "load_driving",
    "load_landmarks",
    "load_reference",
    "make_detector",
    "match_landmarks",
    "reposed_sequence",
    "run",
    "save_landmarks",
]
