"""The plugin manager: loads built-in and installed plugins, collects their backends.

Loading is forgiving by design: a plugin that fails to import, that implements a hook faceshot
does not know, or whose ``register_backends`` raises, is recorded (which plugin, which error)
and left out; faceshot itself keeps working, ``faceshot backends`` shows the failure, and asking
for a backend that is missing says which plugins failed to load.

``FACESHOT_LOAD_PLUGINS`` limits which installed plugins load, for debugging: unset loads all,
an empty value loads none, ``a,b`` loads the entry points named ``a`` and ``b``.  The built-in
backends always load.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module, metadata
from types import ModuleType
from typing import Any

import pluggy

from faceshot_core import hookspecs
from faceshot_core.errors import FaceshotUserError

#: Built-in plugins: (name shown to users, module holding the hook implementations).
BUILTIN_PLUGINS = (("builtin", "faceshot_backends.builtin"),)
LOAD_PLUGINS_ENV = "FACESHOT_LOAD_PLUGINS"


class UnknownBackendError(FaceshotUserError):
    """The requested backend is not registered."""


class BackendConflictError(FaceshotUserError):
    """Two plugins registered backends under the same name."""


class PluginWarning(UserWarning):
    """A plugin was left out (failed import, unknown hook, failing registration)."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded (or failed) plugin."""

    name: str
    dist_name: str | None = None
    version: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend class and the plugin that registered it."""

    name: str
    cls: type[Any]
    plugin: PluginInfo


@dataclass
class BackendRegistry:
    """Backends by name, plus what went wrong while collecting them."""

    entries: dict[str, BackendEntry] = field(default_factory=dict)
    conflicts: dict[str, list[BackendEntry]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)

    @property
    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error is not None]

    def names(self) -> list[str]:
        return sorted({*self.entries, *self.conflicts})

    def get(self, name: str) -> BackendEntry:
        """The entry for ``name``, or a one-line error saying what is available and why not."""
        if name in self.conflicts:
            who = " and ".join(f"{e.plugin.name} ({e.cls.__module__}.{e.cls.__qualname__})"
                               for e in self.conflicts[name])  # fmt: skip
            raise BackendConflictError(
                f"backend {name!r} is registered twice, by {who}; uninstall one, or limit "
                f"plugins with {LOAD_PLUGINS_ENV}"
            )
        if name not in self.entries:
            available = ", ".join(self.names()) or "none"
            failed = "; ".join(f"{p.name}: {p.error}" for p in self.failed_plugins)
            hint = f" (plugins that failed to load: {failed})" if failed else ""
            raise UnknownBackendError(f"unknown backend {name!r}; available: {available}{hint}")
        return self.entries[name]

    def __iter__(self) -> Iterator[BackendEntry]:
        return iter(sorted(self.entries.values(), key=lambda e: e.name))


def _selected(names: list[str]) -> list[str]:
    wanted = os.environ.get(LOAD_PLUGINS_ENV)
    if wanted is None:
        return names
    allow = {n.strip() for n in wanted.split(",") if n.strip()}
    return [n for n in names if n in allow]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    known = {name for name in dir(pm.hook) if not name.startswith("_")}
    prefix = hookspecs.PROJECT_NAME + "_impl"
    unknown = []
    for attr in dir(plugin):
        if attr.startswith("_"):
            continue
        if getattr(getattr(plugin, attr, None), prefix, None) is not None and attr not in known:
            unknown.append(attr)
    return unknown


def _register(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> PluginInfo:
    unknown = _unknown_hooks(pm, plugin)
    if unknown:
        return PluginInfo(info.name, info.dist_name, info.version,
                          f"implements unknown hook(s) {', '.join(unknown)}")  # fmt: skip
    try:
        pm.register(plugin, name=info.name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        return PluginInfo(info.name, info.dist_name, info.version, _describe(exc))
    return info


def make_plugin_manager() -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A plugin manager with the built-ins and the selected installed plugins registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    version = _version("faceshot")
    for name, module_name in BUILTIN_PLUGINS:
        module = import_module(module_name)
        infos.append(_register(pm, module, PluginInfo(name, "faceshot", version)))
    eps = {ep.name: ep for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)}
    for name in _selected(sorted(eps)):
        ep = eps[name]
        dist = ep.dist.name if ep.dist is not None else None
        info = PluginInfo(name, dist, ep.dist.version if ep.dist is not None else None)
        try:
            plugin: ModuleType | object = ep.load()
        except Exception as exc:
            infos.append(PluginInfo(name, dist, info.version, f"import failed: {_describe(exc)}"))
            continue
        infos.append(_register(pm, plugin, info))
    for info in infos:
        if info.error:
            warnings.warn(f"faceshot plugin {info.name} left out: {info.error}", PluginWarning,
                          stacklevel=2)  # fmt: skip
    return pm, infos


def collect_backends(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> BackendRegistry:
    """Call every plugin's ``register_backends`` on its own, so each class has an owner."""
    by_name = {i.name: i for i in infos}
    registry = BackendRegistry(plugins=list(infos))
    for impl in reversed(pm.hook.register_backends.get_hookimpls()):  # registration order
        owner = by_name.get(impl.plugin_name, PluginInfo(impl.plugin_name))
        found: list[type[Any]] = []
        try:
            impl.function(register=found.append)
            for cls in found:
                _check_backend_class(cls)
        except Exception as exc:
            failed = PluginInfo(owner.name, owner.dist_name, owner.version,
                                f"register_backends failed: {_describe(exc)}")  # fmt: skip
            registry.plugins = [failed if p.name == owner.name else p for p in registry.plugins]
            continue
        for cls in found:
            entry = BackendEntry(str(cls.name), cls, owner)
            if entry.name in registry.conflicts:
                registry.conflicts[entry.name].append(entry)
            elif entry.name in registry.entries:
                registry.conflicts[entry.name] = [registry.entries.pop(entry.name), entry]
            else:
                registry.entries[entry.name] = entry
    return registry


def _check_backend_class(cls: object) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"register() takes a backend class, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        raise TypeError(f"{cls.__qualname__}.name must be a short identifier, got {name!r}")
    for attr in ("Options", "check", "animate"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__qualname__} has no {attr!r}: see faceshot_backends.contract")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def backend_registry() -> BackendRegistry:
    """The process-wide registry (built once; :func:`reset` forgets it, for tests)."""
    pm, infos = make_plugin_manager()
    return collect_backends(pm, infos)


def reset() -> None:
    """Forget the cached registry (after installing a plugin or changing the environment)."""
    backend_registry.cache_clear()
