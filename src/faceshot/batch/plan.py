"""Where each job writes, what it was made from, and whether a rerun may skip it.

Every job owns ``OUTDIR/<backend>/<reference>__<driving>/``: ``result.mp4``,
``result_landmarks.npz``, ``eval.json`` and, written last, ``job.json``, the record of the job
(its inputs' content digests, backend, options, settings, faceshot's version, status, timings,
figures).  A job whose record says *done* with the same fingerprint, and whose files are all
there, is skipped on a rerun; anything else (a changed input or setting, a failed or killed
job, a deleted file) runs again.  Writes are atomic, so a killed job leaves no half file that
could pass for a finished one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from faceshot.batch.jobs import Job
from faceshot_core.atomic import atomic_output
from faceshot_core.detection.driving import file_digest

RECORD = "job.json"
RESULT = "result.mp4"
LANDMARKS = "result_landmarks.npz"
EVAL = "eval.json"


@lru_cache(maxsize=4096)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def content_digest(path: Path) -> str:
    """SHA-256 of a file's content (computed once per file version in a process)."""
    stat = path.stat()
    return _digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class PlannedJob:
    """A job, its folder and its fingerprint."""

    job: Job
    folder: Path
    fingerprint: str

    @property
    def key(self) -> str:
        """``<backend>/<reference>__<driving>``: how reports and progress name the job."""
        return f"{self.job.backend}/{self.job.name}"

    @property
    def result(self) -> Path:
        return self.folder / RESULT

    @property
    def landmarks(self) -> Path:
        return self.folder / LANDMARKS

    @property
    def record_path(self) -> Path:
        return self.folder / RECORD

    def record(self) -> dict[str, Any] | None:
        """The job's record, or ``None`` when there is none (or it is unreadable)."""
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def is_done(self) -> bool:
        """Finished earlier from the same inputs and settings, with all its files present."""
        record = self.record()
        return (
            record is not None
            and record.get("status") == "done"
            and record.get("fingerprint") == self.fingerprint
            and self.result.is_file()
            and self.landmarks.is_file()
        )

    def write_record(self, status: str, **fields: Any) -> dict[str, Any]:
        """Write the record atomically (last, so it marks a complete job)."""
        record = {
            "key": self.key, "status": status, "fingerprint": self.fingerprint,
            "job": json.loads(self.job.model_dump_json()), **fields,
        }  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.record_path) as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
        return record


def fingerprint(job: Job) -> str:
    """What the job's outputs depend on: input contents, backend, options, settings, versions."""
    backend_dist = f"faceshot-{job.backend}" if job.backend not in ("warp", "landmarks") else ""
    parts = {
        "reference": content_digest(job.reference),
        "driving": content_digest(job.driving),
        "landmarks": content_digest(job.landmarks) if job.landmarks else None,
        "backend": job.backend,
        "options": job.options,
        "settings": job.settings,
        "faceshot": _version("faceshot"),
        "plugin": _version(backend_dist) if backend_dist else None,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def plan(jobs: list[Job], outdir: Path) -> list[PlannedJob]:
    """Each job with its folder under ``outdir`` and its fingerprint."""
    return [PlannedJob(j, outdir / j.backend / j.name, fingerprint(j)) for j in jobs]
