"""Progress bars (rich) as a plain ``(done, total)`` callback, for the CLI and the core.

Core functions take an optional ``progress(done, total)`` callable and know nothing about
terminals; this is the one place that turns such a callback into a bar.  Bars go to stderr and
are silent when stderr is not a terminal (logs, CI) or when ``quiet`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ProgressCallback = Callable[[int, int | None], None]


@contextmanager
def progress_bar(
    description: str, *, quiet: bool = False, transient: bool = False
) -> Iterator[ProgressCallback]:
    """Yield a callback that advances one bar labelled ``description``.

    ``transient`` removes the bar when done (for bars shown from inside library calls).
    """
    console = Console(stderr=True)
    disabled = quiet or not console.is_terminal
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=disabled, transient=transient) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
