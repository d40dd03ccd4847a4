"""The hooks a faceshot plugin can implement (pluggy project name ``faceshot``).

A plugin is any module or object with functions marked ``@hookimpl``, installed under the
``faceshot`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.faceshot]
    mybackend = "faceshot_mybackend"          # the module holding the hook implementations

    # faceshot_mybackend/__init__.py
    from faceshot_core.hookspecs import hookimpl

    @hookimpl
    def register_backends(register):
        register(MyBackend)

The built-in backends register through the very same hook (see
``faceshot_backends.builtin``), so a third-party backend is a first-class citizen.  Every hook
here is documented with its signature in ``docs/plugins.md``; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "faceshot"
ENTRY_POINT_GROUP = "faceshot"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_backends(register: Callable[[type[Any]], None]) -> None:
    """Register animation backend classes by calling ``register(BackendClass)``.

    Each class implements the contract of :class:`faceshot_backends.contract.Backend` (a
    ``name``, an ``Options`` pydantic model, ``requirements``, ``check()`` and ``animate()``).
    A name already registered by another plugin is a conflict: both are reported, and asking
    for that name is an error that names both plugins.

    .. versionadded:: 0.1
    """
