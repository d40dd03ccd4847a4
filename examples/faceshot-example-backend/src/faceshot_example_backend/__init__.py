"""A paper-puppet animator: the whole character image follows the head motion only.

For each frame, the similarity transform (rotation, uniform scale, translation) that best maps
the reference landmarks onto that frame's landmarks is fitted, and the image is warped with it.
Expressions are ignored; the point is to show every piece a backend plugin needs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import Field

from faceshot_backends import (
    AnimationRequest,
    BackendOptions,
    Capabilities,
    PerFrameBackend,
)
from faceshot_core.hookspecs import BackendRegistrar, hookimpl

__version__ = "0.1.0"


class PuppetOptions(BackendOptions):
    border: str = Field(default="replicate", pattern="^(replicate|reflect|black)$",
                        description="how to fill what the moved image uncovers")  # fmt: skip


_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT101,
            "black": cv2.BORDER_CONSTANT}  # fmt: skip


class PuppetBackend(PerFrameBackend):
    """Moves the reference rigidly with the head (no expressions)."""

    name: ClassVar[str] = "puppet"
    description: ClassVar[str] = "example plugin: the image follows the head motion rigidly"
    Options: ClassVar[type[BackendOptions]] = PuppetOptions
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="per_frame")

    def prepare(self, request: AnimationRequest) -> Any:
        """What every frame of this clip needs: the image, its landmarks and the border mode."""
        border = _BORDERS[getattr(self.options, "border", "replicate")]
        return request.reference_image, request.reference_landmarks, border

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        image, reference, border = state
        matrix, _ = cv2.estimateAffinePartial2D(reference, points, method=cv2.LMEDS)
        if matrix is None:  # degenerate landmarks: keep the image still
            matrix = np.eye(2, 3)
        h, w = image.shape[:2]
        return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)


@hookimpl
def register_backends(register: BackendRegistrar) -> None:
    register(PuppetBackend)
