"""The built-in backends, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faceshot_backends.builtin.landmarks_backend import LandmarksBackend
from faceshot_backends.builtin.warp_backend import WarpBackend
from faceshot_core.hookspecs import hookimpl

DEFAULT_BACKEND = WarpBackend.name


@hookimpl
def register_backends(register: Callable[[type[Any]], None]) -> None:
    register(WarpBackend)
    register(LandmarksBackend)
