"""The ``landmarks`` backend: no generation, the landmark sequence drawn as video.

Two uses: checking a reposed sequence by eye (``overlay``: drawn on the reference image), and
handing it to an external animator that takes pose images (``pose``: coloured lines on black,
the input style of landmark-conditioned models).  The sequence itself is always saved beside
the output by ``faceshot run``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from faceshot_backends.capabilities import Capabilities
from faceshot_backends.options import BackendOptions
from faceshot_backends.per_frame import PerFrameBackend
from faceshot_backends.request import AnimationRequest
from faceshot_core.render import draw_landmarks, pose_image


class LandmarksOptions(BackendOptions):
    style: Literal["overlay", "pose"] = Field(
        default="overlay", description="'overlay': on the reference image; 'pose': on black"
    )


class LandmarksBackend(PerFrameBackend):
    """Draws each frame's 68 landmarks on the reference image or on black."""

    name: ClassVar[str] = "landmarks"
    description: ClassVar[str] = "no generation: the reposed landmarks drawn as video"
    Options: ClassVar[type[BackendOptions]] = LandmarksOptions
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="per_frame")

    def prepare(self, request: AnimationRequest) -> Any:
        """What to draw on: the reference image, or nothing (a black pose image)."""
        style = getattr(self.options, "style", "overlay")
        return None if style == "pose" else request.reference_image, request.size

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        base, size = state
        if base is None:
            return pose_image(points, size)
        return draw_landmarks(base, points)
