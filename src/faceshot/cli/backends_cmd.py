"""``faceshot backends``: what is installed, from which plugin, and whether it can run here."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import click
from rich.console import Console
from rich.table import Table

from faceshot_backends.registry import backend_registry


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + "|".join(str(a) for a in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def _details(console: Console, cls: Any) -> None:
    """Capabilities, options and weight files of one backend (``-v``)."""
    console.print(f"\n[bold]{cls.name}[/bold]: {cls.description}", highlight=False)
    console.print(f"  runs: {cls.capabilities.describe()}", highlight=False)
    fields = cls.Options.model_fields
    console.print("  options:" + ("" if fields else " (none)"))
    for name, info in fields.items():
        console.print(f"    {name} ({_type_name(info.annotation)}, default {info.default!r})"
                      + (f": {info.description}" if info.description else ""),
                      highlight=False)  # fmt: skip
    options = cls.default_options()
    folder = cls.weights_folder(options) if hasattr(cls, "weights_folder") else None
    for spec in cls.weight_specs(options):
        from faceshot_core.weights import find_weights

        where = find_weights(spec, folder)
        console.print(f"  weights {spec.name} ({spec.repo_id or 'local'}): {where.summary()}",
                      highlight=False)  # fmt: skip


@click.command()
@click.option("-v", "--verbose", is_flag=True,
              help="Also list each backend's capabilities, options and weight files.")  # fmt: skip
def backends(verbose: bool) -> None:
    """List the installed backends: plugin, version, and whether each is ready here."""
    registry = backend_registry()
    table = Table(show_lines=False)
    for column in ("backend", "plugin", "version", "runs", "status", "description"):
        table.add_column(column)
    for entry in registry:
        cls = entry.value
        ready = cls.readiness(cls.default_options()).summary()
        table.add_row(entry.name, entry.plugin.name, entry.plugin.version or "-",
                      f"{cls.capabilities.temporal.replace('_', '-')} on "
                      f"{'/'.join(cls.capabilities.devices)}", ready, cls.description)  # fmt: skip
    for name, entries in registry.conflicts.items():
        owners = " and ".join(e.plugin.name for e in entries)
        table.add_row(name, owners, "-", "-", "conflict: registered twice", "")
    console = Console()
    console.print(table)
    for plugin in registry.failed_plugins:
        console.print(f"[red]plugin {plugin.name} failed:[/red] {plugin.error}", markup=True,
                      highlight=False)  # fmt: skip
    if verbose:
        for entry in registry:
            _details(console, entry.value)
