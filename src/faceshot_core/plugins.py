"""The plugin manager: loads every plugin from entry points and collects what each registers.

faceshot's own backends and detectors are plugins too: entry points of the ``faceshot``
distribution (see its ``pyproject.toml``), loaded like any other, so this module names no
concrete plugin.  Loading is forgiving: a plugin that fails to import, implements a hook
faceshot does not know, or whose hook raises (or registers something that is not what the hook
asks for) is recorded (which plugin, which error) and left out; faceshot keeps working,
``faceshot backends`` shows the failure, and asking for what the plugin would have provided
says which plugins failed.

``FACESHOT_LOAD_PLUGINS`` limits which *installed* plugins load, for debugging: unset loads
all, an empty value loads none, ``a,b`` loads the entry points named ``a`` and ``b``.
faceshot's own entry points always load.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from faceshot_core import hookspecs
from faceshot_core.errors import FaceshotUserError

LOAD_PLUGINS_ENV = "FACESHOT_LOAD_PLUGINS"
OWN_DISTRIBUTION = "faceshot"

T = TypeVar("T")


class UnknownBackendError(FaceshotUserError):
    """The requested backend (or detector) is not registered."""


class BackendConflictError(FaceshotUserError):
    """Two plugins registered the same name."""


class PluginWarning(UserWarning):
    """A plugin was left out (failed import, unknown hook, failing registration)."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded (or failed) plugin."""

    name: str
    dist_name: str | None = None
    version: str | None = None
    error: str | None = None

    @property
    def builtin(self) -> bool:
        return self.dist_name == OWN_DISTRIBUTION

    def failed(self, error: str) -> PluginInfo:
        return PluginInfo(self.name, self.dist_name, self.version, error)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing (a backend class, a detector factory, a command) and its owner."""

    name: str
    value: T
    plugin: PluginInfo
    description: str = ""

    @property
    def cls(self) -> T:  # backends: the registered class
        return self.value


@dataclass
class Registry(Generic[T]):
    """Things of one kind by name, plus the plugins and what went wrong while collecting."""

    kind: str  # "backend", "detector", "command"
    entries: dict[str, Entry[T]] = field(default_factory=dict)
    conflicts: dict[str, list[Entry[T]]] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)

    @property
    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error is not None]

    def names(self) -> list[str]:
        return sorted({*self.entries, *self.conflicts})

    def add(self, entry: Entry[T]) -> None:
        if entry.name in self.conflicts:
            self.conflicts[entry.name].append(entry)
        elif entry.name in self.entries:
            self.conflicts[entry.name] = [self.entries.pop(entry.name), entry]
        else:
            self.entries[entry.name] = entry

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``, or a one-line error saying what is available and why not."""
        if name in self.conflicts:
            who = " and ".join(f"{e.plugin.name} ({_where(e.value)})" for e in self.conflicts[name])
            raise BackendConflictError(
                f"{self.kind} {name!r} is registered twice, by {who}; uninstall one, or limit "
                f"plugins with {LOAD_PLUGINS_ENV}"
            )
        if name not in self.entries:
            available = ", ".join(self.names()) or "none"
            failed = "; ".join(f"{p.name}: {p.error}" for p in self.failed_plugins)
            hint = f" (plugins that failed to load: {failed})" if failed else ""
            raise UnknownBackendError(f"unknown {self.kind} {name!r}; available: {available}{hint}")
        return self.entries[name]

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self.entries.values(), key=lambda e: e.name))


def _where(value: object) -> str:
    module = getattr(value, "__module__", "?")
    return f"{module}.{getattr(value, '__qualname__', type(value).__qualname__)}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    known = {name for name in dir(pm.hook) if not name.startswith("_")}
    marker = hookspecs.PROJECT_NAME + "_impl"
    return [attr for attr in dir(plugin) if not attr.startswith("_")
            and getattr(getattr(plugin, attr, None), marker, None) is not None
            and attr not in known]  # fmt: skip


def _register(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> PluginInfo:
    unknown = _unknown_hooks(pm, plugin)
    if unknown:
        return info.failed(f"implements unknown hook(s) {', '.join(unknown)}")
    try:
        pm.register(plugin, name=info.name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        return info.failed(_describe(exc))
    return info


def _selected(eps: list[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
    wanted = os.environ.get(LOAD_PLUGINS_ENV)
    if wanted is None:
        return eps
    allow = {n.strip() for n in wanted.split(",") if n.strip()}
    return [ep for ep in eps if ep.name in allow or _dist(ep) == OWN_DISTRIBUTION]


def _dist(ep: metadata.EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def make_plugin_manager() -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A plugin manager with faceshot's own and the selected installed plugins registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    eps = sorted(metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP),
                 key=lambda ep: (_dist(ep) != OWN_DISTRIBUTION, ep.name))  # fmt: skip
    seen: set[str] = set()
    for ep in _selected(eps):
        if ep.name in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(ep.name)
        info = PluginInfo(ep.name, _dist(ep), ep.dist.version if ep.dist is not None else None)
        try:
            plugin = ep.load()
        except Exception as exc:
            infos.append(info.failed(f"import failed: {_describe(exc)}"))
            continue
        infos.append(_register(pm, plugin, info))
    if not any(i.builtin for i in infos):
        infos.append(PluginInfo("faceshot", error="faceshot's own entry points are missing: "
                                "reinstall it (pip install -e .)"))  # fmt: skip
    for info in infos:
        if info.error:
            warnings.warn(f"faceshot plugin {info.name} left out: {info.error}", PluginWarning,
                          stacklevel=2)  # fmt: skip
    return pm, infos


@lru_cache(maxsize=1)
def plugin_manager() -> tuple[pluggy.PluginManager, tuple[PluginInfo, ...]]:
    """The process-wide plugin manager (built once; :func:`reset` forgets it)."""
    pm, infos = make_plugin_manager()
    return pm, tuple(infos)


def collect(
    hook: str,
    kind: str,
    make_registrar: Callable[[list[Entry[Any]], PluginInfo], Callable[..., None]],
) -> Registry[Any]:
    """Call every plugin's ``hook`` on its own, so that each registered thing has an owner.

    ``make_registrar(found, owner)`` returns the callable handed to the plugin; it validates
    what the plugin registers (raising ``TypeError`` with the reason) and appends entries to
    ``found``.  A plugin whose hook raises is marked failed and contributes nothing.
    """
    pm, infos = plugin_manager()
    by_name = {i.name: i for i in infos}
    registry: Registry[Any] = Registry(kind, plugins=list(infos))
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # registration order
        owner = by_name.get(impl.plugin_name, PluginInfo(impl.plugin_name))
        found: list[Entry[Any]] = []
        try:
            impl.function(register=make_registrar(found, owner))
        except Exception as exc:
            failed = owner.failed(f"{hook} failed: {_describe(exc)}")
            registry.plugins = [failed if p.name == owner.name else p for p in registry.plugins]
            continue
        for entry in found:
            registry.add(entry)
    return registry


def reset() -> None:
    """Forget every cached registry (after installing a plugin or changing the environment)."""
    plugin_manager.cache_clear()
    for forget in _RESETS:
        forget()


_RESETS: list[Callable[[], None]] = []


def on_reset(func: Callable[[], None]) -> Callable[[], None]:
    """Have :func:`reset` also call ``func`` (registries cached by other modules)."""
    _RESETS.append(func)
    return func
