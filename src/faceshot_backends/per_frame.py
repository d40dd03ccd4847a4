"""Backends that render every pose on its own, streaming (``temporal='per_frame'``).

A :class:`PerFrameBackend` subclass is both the class-level description and, once loaded, its
own animator: ``load()`` builds an instance, calls :meth:`~PerFrameBackend.setup` once (load a
model, build tables), and each clip then costs one :meth:`~PerFrameBackend.prepare` (work per
reference: a mesh) and one :meth:`~PerFrameBackend.render` per pose.  The streaming loop, the
resize to the request's size and the progress events come with it.  The built-in ``warp`` and
``landmarks`` backends and the example plugin are written this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from faceshot_backends.contract import BaseAnimator, BaseBackend
from faceshot_backends.framing import resize_frame
from faceshot_backends.options import BackendOptions
from faceshot_backends.request import AnimationRequest, Runtime
from faceshot_core.progress import ProgressSink, StageReporter


class PerFrameBackend(BaseBackend, BaseAnimator):
    """Implement :meth:`render` (and, as needed, :meth:`setup` and :meth:`prepare`)."""

    @classmethod
    def load(
        cls, options: BackendOptions, runtime: Runtime, progress: ProgressSink | None = None
    ) -> PerFrameBackend:
        animator = cls(cls.parse_options(options), runtime)
        animator.setup(progress)
        return animator

    def setup(self, progress: ProgressSink | None = None) -> None:
        """Once per load: expensive work shared by every clip (``self.options``, ``.runtime``)."""

    def prepare(self, request: AnimationRequest) -> Any:
        """Once per clip: work that depends on the reference (a mesh); passed to :meth:`render`."""
        return None

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame for the pose ``points`` ``[68, 2]`` (any size: it is resized)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement render()")

    def animate(
        self, request: AnimationRequest, progress: ProgressSink | None = None
    ) -> Iterator[np.ndarray]:
        self.check_open()
        state = self.prepare(request)
        steps = StageReporter(progress, "animating", request.num_frames)
        for points in request.sequence:
            yield resize_frame(self.render(state, points), request.size)
            steps.step()
