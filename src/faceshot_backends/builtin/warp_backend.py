"""The ``warp`` backend: a landmark-driven CPU animator that runs on any machine.

The reference image is warped piecewise-affinely so that its landmarks follow the reposed
sequence (see :mod:`faceshot_backends.warp_engine`): no weights, no GPU, deterministic.  It
cannot invent what the reference does not show (teeth, the far side of a turned head) beyond a
plausible mouth interior, which is what the diffusion backends are for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

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


class WarpOptions(BackendOptions):
    mouth_interior: bool = Field(
        default=True, description="paint a mouth cavity where the mouth opens wider than in "
        "the reference",
    )  # fmt: skip


class WarpBackend(BaseBackend):
    """Piecewise-affine warp of the reference image along its landmarks."""

    name: ClassVar[str] = "warp"
    description: ClassVar[str] = "CPU piecewise-affine warp of the reference (no weights)"
    Options: ClassVar[type[BackendOptions]] = WarpOptions
    requirements: ClassVar[Requirements] = Requirements()

    def animate(
        self, request: AnimationRequest, progress: ProgressCallback | None = None
    ) -> Iterator[np.ndarray]:
        from faceshot_backends.warp_engine import LandmarkWarper

        options = self.parse_options(request.options)
        assert isinstance(options, WarpOptions)
        warper = LandmarkWarper(
            request.reference_image,
            request.reference_landmarks,
            mouth_interior=options.mouth_interior,
        )
        for m, points in enumerate(request.sequence):
            yield resize_frame(warper.render(points), request.size)
            if progress is not None:
                progress(m + 1, request.num_frames)
