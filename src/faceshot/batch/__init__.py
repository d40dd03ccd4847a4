"""``faceshot batch``: many characters against many clips with many backends.

:func:`run_batch` reads the jobs (:mod:`.jobs`), checks every backend and its options, skips the
jobs finished earlier (:mod:`.plan`), detects each driving clip once for all its jobs, runs the
rest on an executor (:mod:`.local` worker processes, or :mod:`.ray_executor` actors), and writes
the reports (:mod:`.report`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceshot.batch.dispatch import BatchEvent, Dispatch, EventSink
from faceshot.batch.execute import WorkerConfig, outcome
from faceshot.batch.jobs import Job, JobsFileError, load_jobs
from faceshot.batch.plan import PlannedJob, plan
from faceshot.batch.report import contact_sheets, rows, write_reports
from faceshot.pipeline import load_driving
from faceshot_backends.loading import ensure_ready, resolve_runtime
from faceshot_backends.registry import get_backend
from faceshot_core.errors import FaceshotUserError

__all__ = ["BatchEvent", "BatchResult", "Job", "JobsFileError", "load_jobs", "run_batch"]

CACHE = ".cache"


@dataclass
class BatchResult:
    """What a batch did: counts, the report files, the contact sheets, every job's outcome."""

    outdir: Path
    total: int
    skipped: int
    done: int
    failed: int
    report_csv: Path
    report_json: Path
    sheets: list[Path]
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_backends(jobs: list[Job]) -> None:
    """Every backend exists, takes its options and is ready (weights found) before any work."""
    seen = set()
    for job in jobs:
        cfg = job.run_settings()
        key = json.dumps([job.backend, job.options, cfg.device], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        cls = get_backend(job.backend)
        options = cls.parse_options(job.options)
        ensure_ready(cls, options, resolve_runtime(cls, device=cfg.device, dtype=cfg.dtype).device)


def detect_drivings(
    jobs: list[PlannedJob], cache_dir: Path, sink: Callable[[str], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Detect each driving clip once (into the cache every job reads); failures by job key.

    A job whose clip cannot be read or shows no face gets its failed record here: it never
    reaches a worker.
    """
    failures: dict[str, dict[str, Any]] = {}
    done: dict[tuple[str, str, str], str | None] = {}
    for planned in jobs:
        cfg = planned.job.run_settings()
        key = (str(planned.job.driving), cfg.detector, json.dumps(cfg.face))
        if key not in done:
            if sink is not None:
                sink(f"detecting {planned.job.driving.name}")
            try:
                load_driving(planned.job.driving, detector=cfg.detector, smoothing=cfg.smoothing,
                             face=cfg.face, cache_dir=cache_dir)  # fmt: skip
                done[key] = None
            except FaceshotUserError as exc:
                done[key] = str(exc)
        error = done[key]
        if error is not None:
            failures[planned.key] = outcome(planned, "failed", kind="user", error=error)
            planned.write_record("failed", kind="user", error=error)
    return failures


def run_batch(
    jobs: str | Path | list[Job],
    outdir: str | Path,
    *,
    executor: Any = None,
    retries: int = 2,
    evaluate: bool = True,
    events: EventSink | None = None,
    on_plan: Callable[[int, int], EventSink | None] | None = None,
    say: Callable[[str], None] | None = None,
) -> BatchResult:
    """Run a batch into ``outdir``; ``executor`` is a Local/RayExecutor (default: local).

    ``on_plan(total, skipped)`` may return the event sink (the CLI's progress display, which
    needs the counts); ``events`` receives every :class:`BatchEvent` too.
    """
    from faceshot.batch.local import LocalExecutor

    job_list = load_jobs(jobs) if isinstance(jobs, str | Path) else list(jobs)
    if not job_list:
        raise JobsFileError("the batch has no jobs")
    check_backends(job_list)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    planned = plan(job_list, out)
    todo = [p for p in planned if not p.is_done()]
    cache_dir = out / CACHE / "driving"
    failures = detect_drivings(todo, cache_dir, say)
    runnable = [p for p in todo if p.key not in failures]
    display = on_plan(len(todo), len(planned) - len(todo)) if on_plan else None

    def sink(event: BatchEvent) -> None:
        for target in (display, events):
            if target is not None:
                target(event)

    for key, result in failures.items():
        sink(BatchEvent("finished", key, "detector", 1, "failed", result["error"]))
    dispatch = Dispatch(runnable, retries=retries, sink=sink)
    try:
        if runnable:
            (executor or LocalExecutor()).run(dispatch, WorkerConfig(cache_dir, evaluate))
    finally:
        outcomes = {**failures, **dispatch.outcomes}
        for job in runnable:  # a job whose worker died has no record of its failure yet
            final = outcomes.get(job.key)
            record = job.record() or {}
            if final and final["status"] == "failed" and record.get("status") != "failed":
                job.write_record("failed", kind=final.get("kind", ""), error=final["error"])
        table = rows(planned, outcomes)
        report_csv, report_json = write_reports(out, table)
        sheets = contact_sheets(out, planned)
    return BatchResult(
        out, len(planned), len(planned) - len(todo),
        sum(r["status"] == "done" for r in table), sum(r["status"] == "failed" for r in table),
        report_csv, report_json, sheets, outcomes,
    )  # fmt: skip
