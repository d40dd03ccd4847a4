"""CLI commands contributed by plugins through the ``register_commands`` hook.

A plugin's command joins the ``faceshot`` group as ``faceshot NAME``.  A command that is not a
click command, or whose name a built-in command or an earlier plugin already uses, is left
out with a warning naming the plugin; the rest of the CLI keeps working.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import click

from faceshot_core.plugins import Entry, PluginInfo, PluginWarning, Registry, collect


def _registrar(found: list[Entry[Any]], owner: PluginInfo) -> Callable[[click.Command], None]:
    def register(command: click.Command, /) -> None:
        if not isinstance(command, click.Command) or not command.name:
            raise TypeError(f"register() takes a named click command, got {command!r}")
        found.append(Entry(command.name, command, owner, command.get_short_help_str()))

    return register


def plugin_commands() -> Registry[click.Command]:
    """Every command registered by plugins (conflicts and failures recorded, not raised)."""
    return collect("register_commands", "command", _registrar)


_added: dict[str, click.Command] = {}


def add_plugin_commands(group: click.Group) -> None:
    """Add the plugins' commands to ``group``, refusing names that are taken.

    Commands added by an earlier call are removed first, so a process that calls the CLI many
    times (tests, a notebook) always sees the plugins installed now.
    """
    for name, command in list(_added.items()):
        if group.commands.get(name) is command:
            del group.commands[name]
        del _added[name]
    registry = plugin_commands()
    for entry in registry:
        if entry.name in group.commands:
            message = (f"faceshot plugin {entry.plugin.name}: command {entry.name!r} is already "
                       "a faceshot command; left out")  # fmt: skip
            warnings.warn(message, PluginWarning, stacklevel=2)
            continue
        group.add_command(entry.value)
        _added[entry.name] = entry.value
    for name, entries in registry.conflicts.items():
        owners = " and ".join(e.plugin.name for e in entries)
        warnings.warn(f"command {name!r} is registered by {owners}; left out", PluginWarning,
                      stacklevel=2)  # fmt: skip
