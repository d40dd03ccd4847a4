"""The built-in backends, registered through the same hook as any third-party plugin.

This module is an entry point of the faceshot distribution (group ``faceshot``, name
``builtin``): the plugin manager loads it exactly as it loads an installed plugin.
"""

from __future__ import annotations

from faceshot_backends.builtin.landmarks_backend import LandmarksBackend
from faceshot_backends.builtin.warp_backend import WarpBackend
from faceshot_core.hookspecs import BackendRegistrar, hookimpl

DEFAULT_BACKEND = WarpBackend.name


@hookimpl
def register_backends(register: BackendRegistrar) -> None:
    register(WarpBackend)
    register(LandmarksBackend)
