"""Which job runs next, and what happens when one fails: shared by every executor.

A job that fails because of its input (``kind == "user"``: a missing face, a bad option) fails
the same way every time and is reported at once.  A job that crashed, or whose worker died under
it (killed, out of memory, a segfault in a native library), is put back at the end of the queue
and tried again, up to ``retries`` more times; then it is reported as failed with the last
error.  The executors (local processes, Ray actors) only start jobs and report what happened.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faceshot.batch.plan import PlannedJob


@dataclass(frozen=True)
class BatchEvent:
    """Something the progress display shows: a job started, finished, retried; a worker."""

    kind: str  # "started", "finished", "retry", "worker"
    key: str = ""
    worker: str = ""
    attempt: int = 1
    status: str = ""
    error: str = ""


EventSink = Callable[[BatchEvent], None]


def _ignore(event: BatchEvent) -> None:
    return None


@dataclass
class Dispatch:
    """The queue of jobs with their attempts, and the final outcome of each."""

    jobs: list[PlannedJob]
    retries: int = 2
    sink: EventSink = _ignore
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._queue: deque[tuple[PlannedJob, int]] = deque((j, 1) for j in self.jobs)
        self._running: dict[str, tuple[PlannedJob, int, float]] = {}

    @property
    def finished(self) -> bool:
        return not self._queue and not self._running

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def next(self) -> tuple[PlannedJob, int] | None:
        """The next job to start and its attempt number, or ``None`` when none is waiting."""
        return self._queue.popleft() if self._queue else None

    def hand_out(self, idle: set[str], send: Callable[[str, PlannedJob], None]) -> None:
        """Give each idle worker (in name order) the next waiting job, as long as there is one.

        ``send(worker, job)`` starts the job there; the worker stops being idle.
        """
        for worker in sorted(idle):
            item = self.next()
            if item is None:
                return
            send(worker, item[0])
            self.started(worker, *item)
            idle.discard(worker)

    def started(self, worker: str, planned: PlannedJob, attempt: int) -> None:
        self._running[worker] = (planned, attempt, time.perf_counter())
        self.sink(BatchEvent("started", planned.key, worker, attempt))

    def running_on(self, worker: str) -> tuple[PlannedJob, int] | None:
        entry = self._running.get(worker)
        return None if entry is None else (entry[0], entry[1])

    def finished_on(self, worker: str, result: dict[str, Any]) -> None:
        """The worker's job ended with ``result`` (an outcome of :mod:`.execute`)."""
        planned, attempt, _ = self._running.pop(worker)
        retry = result["status"] != "done" and result.get("kind") != "user"
        if retry and attempt <= self.retries:
            self._queue.append((planned, attempt + 1))
            self.sink(BatchEvent("retry", planned.key, worker, attempt, "failed",
                                 result.get("error", "")))  # fmt: skip
            return
        self.outcomes[planned.key] = {**result, "attempts": attempt}
        self.sink(BatchEvent("finished", planned.key, worker, attempt, result["status"],
                             result.get("error", "")))  # fmt: skip

    def lost(self, worker: str, why: str) -> None:
        """The worker died; its job (if any) counts as crashed and may be retried."""
        entry = self._running.get(worker)
        if entry is not None:
            planned = entry[0]
            self.finished_on(worker, {"key": planned.key, "status": "failed", "kind": "crash",
                                      "error": why})  # fmt: skip
        self.sink(BatchEvent("worker", worker=worker, status="lost", error=why))

    def unfinished(self) -> list[str]:
        """Keys of the jobs that had not ended (a stopped batch)."""
        return [j.key for j, _ in self._queue] + [j.key for j, _, _ in self._running.values()]
