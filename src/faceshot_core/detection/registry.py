"""The detectors registered by plugins (``register_detectors``), by name.

faceshot's own ``dlib`` and ``fan`` detectors register through the same hook, from an entry
point of the faceshot distribution (:mod:`faceshot_core.detection.builtin`).  Code may also add
a detector for the running process with :func:`register_detector` (tests, notebooks).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from faceshot_core.detection.base import FaceDetector
from faceshot_core.plugins import (
    Entry,
    PluginInfo,
    Registry,
    collect,
    on_reset,
)

DetectorFactory = Callable[..., FaceDetector]
DEFAULT_DETECTOR = "dlib"
_LOCAL = PluginInfo("local")
_local: dict[str, Entry[DetectorFactory]] = {}


def _valid_name(name: object) -> str:
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"detector name must be a simple identifier, got {name!r}")
    return name


def _registrar(found: list[Entry[Any]], owner: PluginInfo) -> Callable[..., None]:
    def register(name: str, factory: DetectorFactory, /, *, description: str = "") -> None:
        if not callable(factory):
            raise TypeError(f"detector {name!r}: the factory must be callable, got {factory!r}")
        found.append(Entry(_valid_name(name), factory, owner, description))

    return register


@lru_cache(maxsize=1)
def _plugin_detectors() -> Registry[DetectorFactory]:
    return collect("register_detectors", "face detector", _registrar)


on_reset(_plugin_detectors.cache_clear)


def detector_registry() -> Registry[DetectorFactory]:
    """Every detector: those of plugins, then those registered in this process."""
    plugins = _plugin_detectors()
    merged: Registry[DetectorFactory] = Registry(
        plugins.kind, dict(plugins.entries), dict(plugins.conflicts), list(plugins.plugins)
    )
    for entry in _local.values():
        merged.entries[entry.name] = entry
    return merged


def register_detector(
    name: str, factory: DetectorFactory, *, description: str = "", replace: bool = False
) -> None:
    """Make ``get_detector(name)`` build a detector with ``factory(**options)`` in this process.

    Registering a name that exists is an error unless ``replace`` is true: two detectors
    silently fighting over one name is worse than a loud failure.
    """
    _valid_name(name)
    if name in detector_registry().names() and not replace:
        raise ValueError(f"a detector named {name!r} is already registered")
    _local[name] = Entry(name, factory, _LOCAL, description)


def available_detectors() -> list[str]:
    """Registered detector names (registered, not necessarily installed: 'fan' needs extras)."""
    return detector_registry().names()


def get_detector(name: str = DEFAULT_DETECTOR, **options: object) -> FaceDetector:
    """Build the detector registered as ``name``; ``options`` go to its factory.

    Raises :class:`FaceshotUserError` for an unknown name and
    :class:`~faceshot_core.errors.MissingDependencyError` when the detector's packages or
    weights are missing.
    """
    entry = detector_registry().get(name)
    return entry.value(**options)
