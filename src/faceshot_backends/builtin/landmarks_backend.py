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

from faceshot_backends.contract import (
    AnimationRequest,
    BackendOptions,
    PerFrameBackend,
    Requirements,
    resize_frame,
)
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
    requirements: ClassVar[Requirements] = Requirements()

    def prepare(self, request: AnimationRequest, options: Any) -> Any:
        """Draw at the output size directly (sharper lines than drawing and resizing)."""
        h, w = request.reference_image.shape[:2]
        out_w, out_h = request.size
        scale = np.array([out_w / w, out_h / h], dtype=np.float32)
        base = None if options.style == "pose" else resize_frame(request.reference_image,
                                                                  (out_w, out_h))  # fmt: skip
        return scale, base, (out_w, out_h)

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        scale, base, size = state
        if base is None:
            return pose_image(points * scale, size)
        return draw_landmarks(base, points * scale)
