"""faceshot: bring any character to life from a driving video (the FaceShot method).

One call animates a character (``faceshot run`` on the command line)::

    import faceshot
    result = faceshot.run("cat.png", "driving.mp4", output="cat.mp4", backend="warp",
                          reference_landmarks="cat.json", options={"mouth_interior": True})
    result.output, result.sequence.points, result.timings

A backend loaded once serves many clips::

    with faceshot.load_animator("warp") as animator:
        for clip in ("a.mp4", "b.mp4"):
            faceshot.run("cat.png", clip, output=f"cat_{clip}", reference_landmarks="cat.json",
                         animator=animator)

and the steps are available on their own (the same functions ``run`` is made of)::

    driving = faceshot.load_driving("driving.mp4")          # detect (or load saved) landmarks
    image = faceshot.load_image("person.png")
    reference, source = faceshot.reference_landmarks(image)  # file, detector or matcher
    sequence = faceshot.retarget(reference, driving)
    faceshot.save_landmarks("reposed.npz", sequence)

Landmarks are iBUG 68-point, pixel (x, y) float32; see :mod:`faceshot_core.schema`.
"""

from faceshot.animate import OutputPaths, animate
from faceshot.evaluation import EvalReport, evaluate
from faceshot.matching_api import MatchSettings, match_landmarks
from faceshot.pipeline import (
    detect_reference,
    load_driving,
    make_detector,
    reference_landmarks,
    retarget,
)
from faceshot.runner import RunResult, load_animator, run
from faceshot.settings import RunSettings
from faceshot_core.images import load_image
from faceshot_core.landmark_files import load_landmarks, save_landmarks
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.progress import ProgressEvent

__version__ = "0.2.0"

__all__ = [
    "EvalReport",
    "FaceLandmarks",
    "LandmarkSequence",
    "MatchSettings",
    "OutputPaths",
    "ProgressEvent",
    "RunResult",
    "RunSettings",
    "__version__",
    "animate",
    "detect_reference",
    "evaluate",
    "load_animator",
    "load_driving",
    "load_image",
    "load_landmarks",
    "make_detector",
    "match_landmarks",
    "reference_landmarks",
    "retarget",
    "run",
    "save_landmarks",
]
