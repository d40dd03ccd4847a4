"""The local executor: worker processes on this machine, one per GPU when there are GPUs.

Each worker is a process of its own (``spawn``: no state inherited from the parent, safe with
CUDA), with its own inbox; the parent hands it one job at a time, so it always knows what each
worker is doing.  When a worker dies under a job (killed, out of memory, a native crash) the
parent sees the process gone, counts the job as crashed (retried by :mod:`.dispatch`) and starts
a fresh worker.  With several GPUs visible each worker is pinned to one
(``CUDA_VISIBLE_DEVICES``), so one loaded pipeline per GPU serves all its jobs.

Stopping: Ctrl-C reaches the parent, which stops the workers with SIGTERM (each one unwinds, so
temporary files are removed) and re-raises; the jobs that finished keep their records and a
rerun continues with the rest.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from faceshot.batch.dispatch import Dispatch
from faceshot.batch.execute import JobRunner, WorkerConfig

POLL_S = 0.2
STOP_GRACE_S = 10.0


class WorkerStopped(BaseException):
    """SIGTERM in a worker: unwinds like Ctrl-C, so ``finally`` blocks remove temp files."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise WorkerStopped


def worker_main(name: str, gpu: int | None, config: WorkerConfig, inbox: Any, outbox: Any) -> None:
    """A worker's life: take a job, run it, report, until told to stop (``None``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, _stop)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    runner = JobRunner(config)
    try:
        while (planned := inbox.get()) is not None:
            outbox.put(("result", name, runner.run(planned)))
    except WorkerStopped:
        pass
    finally:
        runner.close()


def visible_gpus() -> list[int]:
    """Indices of the CUDA devices this process may use (none without torch or CUDA)."""
    try:
        import torch
    except ImportError:
        return []
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@dataclass
class _Worker:
    name: str
    gpu: int | None
    process: BaseProcess
    inbox: Any


class LocalExecutor:
    """Run a batch's jobs in ``workers`` processes (default: one per GPU, else two)."""

    def __init__(self, workers: int | None = None) -> None:
        self.gpus = visible_gpus()
        self.count = workers or (len(self.gpus) or 2)
        self._ctx = mp.get_context("spawn")
        self._workers: dict[str, _Worker] = {}

    def describe(self) -> str:
        where = f"{len(self.gpus)} GPU(s)" if self.gpus else "CPU"
        return f"local: {self.count} worker process(es) on {where}"

    def pid_of(self, worker: str) -> int:
        """The process id of a running worker (to watch it, or to test a lost worker)."""
        pid = self._workers[worker].process.pid
        if pid is None:
            raise LookupError(f"{worker} has not started")
        return pid

    def _spawn(self, slot: int, config: WorkerConfig, outbox: Any) -> _Worker:
        name = f"worker-{slot}"
        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
        inbox = self._ctx.Queue()
        process = self._ctx.Process(target=worker_main, args=(name, gpu, config, inbox, outbox),
                                    name=f"faceshot-batch-{name}", daemon=True)  # fmt: skip
        process.start()
        return _Worker(name, gpu, process, inbox)

    def run(self, dispatch: Dispatch, config: WorkerConfig) -> None:
        """Run every job of ``dispatch`` to its final outcome (or until interrupted)."""
        outbox = self._ctx.Queue()
        count = max(1, min(self.count, len(dispatch.jobs)))
        workers = self._workers = {
            w.name: w for w in (self._spawn(i, config, outbox) for i in range(count))
        }
        idle = set(workers)
        try:
            while not dispatch.finished:
                dispatch.hand_out(idle, lambda name, job: workers[name].inbox.put(job))
                self._collect(dispatch, outbox, idle)
                for name, worker in list(workers.items()):
                    if name not in idle and not worker.process.is_alive():
                        code = worker.process.exitcode
                        dispatch.lost(name, f"worker process died (exit code {code}) during "
                                            "the job")  # fmt: skip
                        slot = int(name.rsplit("-", 1)[1])
                        workers[name] = self._spawn(slot, config, outbox)
                        idle.add(name)
        finally:
            self._stop(list(workers.values()))

    def _collect(self, dispatch: Dispatch, outbox: Any, idle: set[str]) -> None:
        try:
            message = outbox.get(timeout=POLL_S)
        except queue.Empty:
            return
        _, name, result = message
        if dispatch.running_on(name) is not None:
            dispatch.finished_on(name, result)
        idle.add(name)

    def _stop(self, workers: list[_Worker]) -> None:
        for worker in workers:
            if worker.process.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    worker.inbox.put(None)
        for worker in workers:
            worker.process.join(timeout=0.5)
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: the worker unwinds (temp files removed)
        for worker in workers:
            worker.process.join(timeout=STOP_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
