"""faceshot's own detectors, registered through the ``register_detectors`` hook.

Loaded from an entry point of the faceshot distribution, like any plugin.  The factories
import their detector module on first use, so listing detectors never imports dlib or torch.
"""

from __future__ import annotations

from faceshot_core.detection.base import FaceDetector
from faceshot_core.hookspecs import DetectorRegistrar, hookimpl


def dlib_detector(**options: object) -> FaceDetector:
    from faceshot_core.detection.dlib_detector import DlibDetector

    return DlibDetector(**options)  # type: ignore[arg-type]


def fan_detector(**options: object) -> FaceDetector:
    from faceshot_core.detection.fan_detector import FanDetector

    return FanDetector(**options)  # type: ignore[arg-type]


@hookimpl
def register_detectors(register: DetectorRegistrar) -> None:
    register("dlib", dlib_detector, description="dlib HOG + 68-point model; offline, any CPU")
    register("fan", fan_detector, description="the paper's RetinaFace + AWing FAN "
             "(pip install 'faceshot[fan]' and its weights)")  # fmt: skip
