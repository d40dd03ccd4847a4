"""The ``warp`` backend: a landmark-driven CPU animator that runs on any machine.

The reference image is warped piecewise-affinely so that its landmarks follow the reposed
sequence (see :mod:`faceshot_backends.warp_engine`): no weights, no GPU, deterministic.  It
cannot invent what the reference does not show (teeth, the far side of a turned head) beyond a
plausible mouth interior and mirrored texture where a head at the image border slides in,
which is what the diffusion backends are for.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from faceshot_backends.capabilities import Capabilities
from faceshot_backends.options import BackendOptions
from faceshot_backends.per_frame import PerFrameBackend
from faceshot_backends.request import AnimationRequest


class WarpOptions(BackendOptions):
    mouth_interior: bool = Field(
        default=True, description="paint the mouth interior inside the reposed inner lips "
        "(a shaded cavity, the reference's teeth carried by the lips)",
    )  # fmt: skip


class WarpBackend(PerFrameBackend):
    """Piecewise-affine warp of the reference image along its landmarks."""

    name: ClassVar[str] = "warp"
    description: ClassVar[str] = "CPU piecewise-affine warp of the reference (no weights)"
    Options: ClassVar[type[BackendOptions]] = WarpOptions
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="per_frame")

    def prepare(self, request: AnimationRequest) -> Any:
        """The mesh and lookup tables of this reference (built once per clip)."""
        from faceshot_backends.warp_engine import LandmarkWarper

        return LandmarkWarper(
            request.reference_image,
            request.reference_landmarks,
            mouth_interior=getattr(self.options, "mouth_interior", True),
        )

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        return state.render(points)
