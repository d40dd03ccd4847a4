"""Progress as events: what long work reports, and one rich display of it for terminals.

Every long step in faceshot (detecting landmarks, loading a model, denoising, decoding,
rendering frames, building a gallery) reports :class:`ProgressEvent` objects to an optional
``progress`` callable (a :data:`ProgressSink`).  The work knows nothing about terminals; each
front end shows the events its own way: the CLI with one rich bar per stage
(:class:`ProgressDisplay`), a web app with its own widget, a batch run in its logs.

Stages are free-form short words; the ones faceshot itself uses are in :data:`STAGES`, so a
front end can order them.  ``total`` may be ``None`` when the amount of work is not known yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

__all__ = [
    "STAGES",
    "ProgressDisplay",
    "ProgressEvent",
    "ProgressSink",
    "StageReporter",
    "progress_display",
    "report",
]

#: The stages faceshot's own steps report, in the order a run passes through them.
STAGES = ("detecting", "loading", "denoising", "decoding", "animating", "building")


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` ``unit``s of ``stage`` are finished (``total`` may be unknown)."""

    stage: str
    done: int
    total: int | None = None
    unit: str = "frames"


ProgressSink = Callable[[ProgressEvent], None]


def report(
    sink: ProgressSink | None, stage: str, done: int, total: int | None, unit: str = "frames"
) -> None:
    """Send one event to ``sink`` when there is one (the common case in library code)."""
    if sink is not None:
        sink(ProgressEvent(stage, done, total, unit))


class StageReporter:
    """Counts work of one stage and reports each step: ``step()`` after each unit of work."""

    def __init__(
        self, sink: ProgressSink | None, stage: str, total: int | None, unit: str = "frames"
    ) -> None:
        self.sink, self.stage, self.total, self.unit = sink, stage, total, unit
        self.done = 0

    def step(self, count: int = 1) -> None:
        self.done += count
        total = self.total if self.total is None else max(self.total, self.done)
        report(self.sink, self.stage, self.done, total, self.unit)


class ProgressDisplay:
    """A :data:`ProgressSink` drawing one rich bar per stage, created on the stage's first event.

    Bars go to stderr and stay silent when stderr is not a terminal (logs, CI) or ``quiet``.
    Use it as a context manager around the work.
    """

    def __init__(self, *, quiet: bool = False, transient: bool = False) -> None:
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

        console = Console(stderr=True)
        self.enabled = not quiet and console.is_terminal
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
            transient=transient,
        )
        self._tasks: dict[str, Any] = {}
        self.events: list[ProgressEvent] = []  # the last event of each stage, in first-seen order

    def __call__(self, event: ProgressEvent) -> None:
        task = self._tasks.get(event.stage)
        if task is None:
            task = self._bar.add_task(event.stage, total=event.total, unit=event.unit)
            self._tasks[event.stage] = task
            self.events.append(event)
        else:
            index = next(i for i, e in enumerate(self.events) if e.stage == event.stage)
            self.events[index] = event
        self._bar.update(task, completed=event.done, total=event.total, unit=event.unit)

    def __enter__(self) -> ProgressDisplay:
        self._bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.__exit__(exc_type, exc, tb)


@contextmanager
def progress_display(*, quiet: bool = False, transient: bool = False) -> Iterator[ProgressSink]:
    """``with progress_display() as progress: work(progress=progress)``."""
    with ProgressDisplay(quiet=quiet, transient=transient) as display:
        yield display
