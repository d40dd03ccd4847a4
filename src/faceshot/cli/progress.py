"""Progress bars for long CLI work (rich), as a plain ``(done, total)`` callback.

The core functions take an optional ``progress(done, total)`` callable and know nothing about
terminals; the CLI hands them one of these.  Bars go to stderr and are silent when stderr is not
a terminal (logs, CI) or when ``--quiet`` is given.
"""

from __future__ import annotations

import sys
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
def progress_bar(description: str, *, quiet: bool = False) -> Iterator[ProgressCallback]:
    """Yield a callback that advances one bar labelled ``description``."""
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
    with Progress(*columns, console=console, disable=disabled, transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def say(message: str, *, quiet: bool = False) -> None:
    """One line of status on stderr (stdout stays clean for piping)."""
    if not quiet:
        print(message, file=sys.stderr)
