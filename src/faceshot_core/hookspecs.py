"""The hooks a faceshot plugin can implement (pluggy project ``faceshot``).

A plugin is a module (or object) with functions marked ``@hookimpl``, installed under the
``faceshot`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.faceshot]
    mybackend = "faceshot_mybackend"          # the module holding the hook implementations

    # faceshot_mybackend/__init__.py
    from faceshot_core.hookspecs import hookimpl

    @hookimpl
    def register_backends(register):
        register(MyBackend)

Each hook receives a typed *registrar* and calls it once per thing it provides.  faceshot's
own backends and detectors register through the very same hooks, from entry points of the
``faceshot`` distribution itself, so a third-party plugin is a first-class citizen.  Every hook
is documented with its signature in ``docs/plugins.md`` and has a test; a test keeps them in
step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import click

PROJECT_NAME = "faceshot"
ENTRY_POINT_GROUP = "faceshot"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class BackendRegistrar(Protocol):
    """``register(BackendClass)``: add an animation backend class."""

    def __call__(self, backend: type[Any], /) -> None: ...


class DetectorRegistrar(Protocol):
    """``register(name, factory, description="")``: add a face landmark detector.

    ``factory(**options)`` builds the detector (a
    :class:`~faceshot_core.detection.base.FaceDetector`); import heavy packages inside it, so
    that listing detectors costs nothing.
    """

    def __call__(
        self, name: str, factory: Callable[..., Any], /, *, description: str = ""
    ) -> None: ...


class CommandRegistrar(Protocol):
    """``register(command)``: add a click command or group to the ``faceshot`` CLI."""

    def __call__(self, command: click.Command, /) -> None: ...


@hookspec
def register_backends(register: BackendRegistrar) -> None:
    """Register animation backend classes by calling ``register(BackendClass)``.

    Each class satisfies the backend contract (``docs/plugins.md``, contract 2); one that
    does not is refused at registration with a message naming the plugin and what is missing.
    A name already registered by another plugin is a conflict: both are reported, and asking
    for that name is an error that names both plugins.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 backends follow contract 2 (class-level description, ``load()``).
    """


@hookspec
def register_detectors(register: DetectorRegistrar) -> None:
    """Register face landmark detectors by calling ``register(name, factory, description=...)``.

    Registered names become the choices of ``--detector`` and of
    :func:`faceshot_core.detection.get_detector`.  A name registered twice is a conflict,
    reported like a backend conflict.

    .. versionadded:: 0.2
    """


@hookspec
def register_commands(register: CommandRegistrar) -> None:
    """Register CLI commands by calling ``register(click_command)``.

    The command appears as ``faceshot NAME`` (e.g. ``faceshot mofa ...``).  A name that a
    built-in command or another plugin already uses is refused with a warning.

    .. versionadded:: 0.2
    """
