"""One job, run inside a worker: ``faceshot.run`` with an animator the worker keeps loaded.

A worker (a local process or a Ray actor) runs many jobs; loading a diffusion pipeline takes
longer than animating a clip, so each worker keeps one loaded animator per (backend, options,
device) for all its jobs (the load-once contract of :mod:`faceshot_backends.contract`).

The outcome of a job is a plain dict that crosses process and node boundaries: ``status``
(``done`` or ``failed``), ``kind`` of failure (``user``: bad input or settings, the same on any
retry; ``crash``: anything else, worth retrying), the error's line, timings and figures.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceshot.batch.plan import EVAL, PlannedJob
from faceshot.runner import load_animator, run
from faceshot_backends.contract import Animator
from faceshot_core.atomic import atomic_output
from faceshot_core.errors import FaceshotUserError
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import LandmarkSequence

logger = logging.getLogger("faceshot.batch")

DRIVING_LANDMARKS = "driving_landmarks.npz"


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a batch shares."""

    cache_dir: Path  # the driving-landmark cache every job reads (detected once per clip)
    evaluate: bool = True


def outcome(
    planned: PlannedJob, status: str, *, kind: str = "", error: str = "", **fields: Any
) -> dict[str, Any]:
    return {"key": planned.key, "status": status, "kind": kind, "error": error, **fields}


class JobRunner:
    """Runs jobs one after another, each animator loaded once for all the jobs that share it."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self._animators: dict[str, Animator] = {}

    def _animator(self, planned: PlannedJob) -> Animator:
        job, cfg = planned.job, planned.job.run_settings()
        key = json.dumps([job.backend, job.options, cfg.device, cfg.dtype], sort_keys=True)
        if key not in self._animators:
            self._animators[key] = load_animator(
                job.backend, job.options, device=cfg.device, dtype=cfg.dtype
            )
        return self._animators[key]

    def run(self, planned: PlannedJob) -> dict[str, Any]:
        """Run one job and write its record; never raises for a failing job."""
        started = time.perf_counter()
        try:
            fields = self._run(planned)
        except FaceshotUserError as exc:
            return self._failed(planned, "user", str(exc), started)
        except Exception as exc:  # a crash of faceshot or a plugin: retried by the executor
            logger.error("job %s crashed:\n%s", planned.key, traceback.format_exc())
            return self._failed(planned, "crash", f"{type(exc).__name__}: {exc}", started)
        fields["timings"]["job"] = time.perf_counter() - started
        planned.write_record("done", **fields)
        return outcome(planned, "done", **fields)

    def _failed(self, planned: PlannedJob, kind: str, error: str, started: float) -> dict[str, Any]:
        timings = {"job": time.perf_counter() - started}
        planned.write_record("failed", kind=kind, error=error, timings=timings)
        return outcome(planned, "failed", kind=kind, error=error, timings=timings)

    def _run(self, planned: PlannedJob) -> dict[str, Any]:
        job, folder = planned.job, planned.folder
        folder.mkdir(parents=True, exist_ok=True)
        cfg = job.run_settings().model_copy(
            update={"cache_dir": self.config.cache_dir, "overwrite": True}
        )
        result = run(job.reference, job.driving, output=planned.result, options=job.options,
                     settings=cfg, animator=self._animator(planned))  # fmt: skip
        fields: dict[str, Any] = {
            "frames": result.frames, "fps": result.fps, "device": result.device,
            "reference_source": result.reference_source, "timings": dict(result.timings),
        }  # fmt: skip
        if self.config.evaluate:
            t = time.perf_counter()
            fields["eval"] = self._evaluate(planned, result.driving, cfg.detector)
            fields["timings"]["eval"] = time.perf_counter() - t
        return fields

    def _evaluate(self, planned: PlannedJob, driving: LandmarkSequence, detector: str) -> Any:
        """The job's figures (``faceshot eval``), also written to ``eval.json``.

        ``driving`` is the motion the run used (as long as the result), saved beside it.
        """
        from faceshot.evaluation import evaluate

        job, folder = planned.job, planned.folder
        driving_file = save_landmarks(folder / DRIVING_LANDMARKS, driving)
        report = evaluate(planned.result, planned.landmarks, driving=driving_file,
                          reference=job.reference, detector=detector)  # fmt: skip
        figures = json.loads(report.to_json())
        with atomic_output(folder / EVAL) as tmp:
            tmp.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
        return figures

    def close(self) -> None:
        """Release every loaded animator (GPU memory, open files)."""
        animators, self._animators = list(self._animators.values()), {}
        for animator in animators:
            try:
                animator.close()
            except Exception:  # closing must not hide the batch's own outcome
                logger.warning("closing an animator failed", exc_info=True)
