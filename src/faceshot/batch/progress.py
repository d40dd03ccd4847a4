"""The batch's progress on the terminal: one overall bar and a line per worker.

The bar counts jobs done, failed and remaining, with the time left estimated from the jobs
finished so far; under it each worker says what it runs (and since when), so a stuck GPU or a
job that keeps crashing is visible while the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faceshot.batch.dispatch import BatchEvent


class BatchProgress:
    """An event sink for :class:`~faceshot.batch.dispatch.Dispatch` that draws the progress."""

    def __init__(self, total: int, skipped: int = 0) -> None:
        self.total, self.skipped = total, skipped
        self.done = self.failed = self.retried = 0
        self.workers: dict[str, tuple[str, float]] = {}
        self.bar = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.description}"), TimeRemainingColumn(),
        )  # fmt: skip
        self.task = self.bar.add_task(self._summary(), total=total)

    def _summary(self) -> str:
        remaining = self.total - self.done - self.failed
        parts = [f"{self.done} done", f"{self.failed} failed", f"{remaining} remaining"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (finished earlier)")
        if self.retried:
            parts.append(f"{self.retried} retried")
        return ", ".join(parts)

    def __call__(self, event: BatchEvent) -> None:
        if event.kind == "started":
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            self.workers[event.worker] = (event.key + attempt, time.monotonic())
        elif event.kind == "retry":
            self.retried += 1
            self.workers.pop(event.worker, None)
        elif event.kind == "finished":
            self.workers.pop(event.worker, None)
            if event.status == "done":
                self.done += 1
            else:
                self.failed += 1
        elif event.kind == "worker":
            self.workers[event.worker] = (f"restarted: {event.error}", time.monotonic())
        self.bar.update(self.task, completed=self.done + self.failed, description=self._summary())

    def render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name in sorted(self.workers):
            what, since = self.workers[name]
            table.add_row(f"[dim]{name}", what, f"[dim]{now - since:.0f} s")
        return Group(self.bar, table)


@contextmanager
def progress_display(progress: BatchProgress, *, quiet: bool = False) -> Iterator[BatchProgress]:
    """Draw ``progress`` on stderr while the block runs (nothing when ``quiet``)."""
    if quiet:
        yield progress
        return
    with Live(progress.render(), console=Console(stderr=True), refresh_per_second=4,
              get_renderable=progress.render, transient=False):  # fmt: skip
        yield progress
