"""The backends registered by plugins, checked against the contract as they register.

A class that does not satisfy :func:`~faceshot_backends.contract.contract_problems` is refused
at registration: its plugin is marked failed with a message naming what is missing, and
``faceshot backends`` shows it.  The registry is built once per process (``reset()`` in
:mod:`faceshot_core.plugins` forgets it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from faceshot_backends.contract import contract_error
from faceshot_core.plugins import Entry, PluginInfo, Registry, collect, on_reset

BackendRegistry = Registry[type[Any]]
BackendEntry = Entry[type[Any]]


def _registrar(found: list[Entry[Any]], owner: PluginInfo) -> Callable[[type[Any]], None]:
    def register(backend: type[Any], /) -> None:
        error = contract_error(backend)
        if error:
            raise TypeError(error)
        found.append(Entry(backend.name, backend, owner, backend.description))

    return register


@lru_cache(maxsize=1)
def backend_registry() -> BackendRegistry:
    """Every registered backend by name, with its plugin; failures recorded, not raised."""
    return collect("register_backends", "backend", _registrar)


on_reset(backend_registry.cache_clear)


def get_backend(name: str) -> type[Any]:
    """The backend class registered as ``name`` (a one-line error when unknown)."""
    return backend_registry().get(name).value
