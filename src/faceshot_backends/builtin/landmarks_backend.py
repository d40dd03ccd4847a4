"""The ``landmarks`` backend: no generation, the landmark sequence drawn as video.

Two uses: checking a reposed sequence by eye (``overlay``: drawn on the reference image), and
handing it to an external animator that takes pose images (``pose``: coloured lines on black,
the input style of landmark-conditioned models).  The sequence itself is always saved beside
the output by ``faceshot run``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from faceshot_backends.contract import (
    AnimationRequest,
    BackendOptions,
    BaseBackend,
    ProgressCallback,
    Requirements,
    resize_frame,
)
from faceshot_core.render import draw_landmarks, pose_image


class LandmarksOptions(BackendOptions):
    style: Literal["overlay", "pose"] = Field(
        default="overlay", description="'overlay': on the reference image; 'pose': on black"
    )


class LandmarksBackend(BaseBackend):
    """Draws each frame's 68 landmarks on the reference image or on black."""

    name: ClassVar[str] = "landmarks"
    description: ClassVar[str] = "no generation: the reposed landmarks drawn as video"
    Options: ClassVar[type[BackendOptions]] = LandmarksOptions
    requirements: ClassVar[Requirements] = Requirements()

    def animate(
        self, request: AnimationRequest, progress: ProgressCallback | None = None
    ) -> Iterator[np.ndarray]:
        options = self.parse_options(request.options)
        assert isinstance(options, LandmarksOptions)
        h, w = request.reference_image.shape[:2]
        out_w, out_h = request.size
        scale = np.array([out_w / w, out_h / h], dtype=np.float32)
        base = resize_frame(request.reference_image, (out_w, out_h))
        for m, points in enumerate(request.sequence):
            scaled = points * scale
            if options.style == "pose":
                yield pose_image(scaled, (out_w, out_h))
            else:
                yield draw_landmarks(base, scaled)
            if progress is not None:
                progress(m + 1, request.num_frames)
