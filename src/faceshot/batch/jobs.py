"""A batch's jobs: read from YAML or CSV, a list of jobs or a grid, checked before any work.

A grid is what studios and benchmarks run (the paper's CharacBench is 46 characters x 24 clips):
every reference against every driving clip with every backend.  YAML holds either or both::

    defaults:                      # for every job (a job's own values win)
      settings: {max_frames: 48}
      options: {}
    grid:
      references:
        - {image: cat.png, landmarks: cat.json}
        - person.png               # landmarks from the detector
      drivings: [d0.mp4, d18.mp4]
      backends: [warp, {name: mofa, options: {steps: 25}}]
    jobs:
      - {reference: dog.png, landmarks: dog.json, driving: d0.mp4, backend: warp}

CSV has one job per row: ``reference, driving`` and optionally ``backend``, ``landmarks``,
``options`` (JSON) and any run setting as its own column.  Relative paths are relative to the
jobs file.  Settings are those of ``faceshot run`` (:class:`~faceshot.settings.RunSettings`), so
a misspelt one fails here, with the job's number, before anything runs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from faceshot.settings import RunSettings
from faceshot_core.errors import FaceshotUserError

#: Settings a job may not set: the batch decides its outputs and where the cache is.
BATCH_OWNED = ("reference_landmarks", "backend", "overwrite", "cache_dir", "compare", "overlay")


class JobsFileError(FaceshotUserError):
    """A jobs file that cannot be read or holds a bad job."""


class Job(BaseModel):
    """One animation: a reference, a driving clip, a backend, its options and run settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference: Path
    driving: Path
    backend: str = "warp"
    landmarks: Path | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<reference>__<driving>``: the job's folder under its backend's folder."""
        return f"{self.reference.stem}__{self.driving.stem}"

    def run_settings(self) -> RunSettings:
        """The job's settings as ``faceshot run`` would take them (validated)."""
        values = {**self.settings, "backend": self.backend, "reference_landmarks": self.landmarks}
        return RunSettings.from_mapping(values, caller=f"job {self.name}")


def load_jobs(path: str | Path) -> list[Job]:
    """The jobs of a ``.yaml``/``.yml`` or ``.csv`` file, every input checked to exist."""
    p = Path(path)
    if not p.is_file():
        raise JobsFileError(f"jobs file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        jobs = _from_yaml(p)
    elif suffix == ".csv":
        jobs = _from_csv(p)
    else:
        raise JobsFileError(f"{p}: jobs come in a .yaml or .csv file, not {suffix or 'no suffix'}")
    if not jobs:
        raise JobsFileError(f"{p} lists no jobs")
    for number, job in enumerate(jobs, 1):
        _check(p, number, job)
    return _unique(jobs)


def _check(source: Path, number: int, job: Job) -> None:
    where = f"{source}: job {number} ({job.name})"
    for label, file in (("reference", job.reference), ("driving", job.driving),
                        ("landmarks", job.landmarks)):  # fmt: skip
        if file is not None and not file.is_file():
            raise JobsFileError(f"{where}: the {label} {file} does not exist")
    owned = sorted(set(job.settings) & set(BATCH_OWNED))
    if owned:
        raise JobsFileError(f"{where}: the batch sets {', '.join(owned)} itself")
    try:
        job.run_settings()
    except FaceshotUserError as exc:
        raise JobsFileError(f"{where}: {exc}") from None


def _unique(jobs: list[Job]) -> list[Job]:
    """Jobs in order, exact repeats dropped; two different jobs of one name are refused."""
    seen: dict[tuple[str, str], Job] = {}
    out = []
    for job in jobs:
        key = (job.backend, job.name)
        if key in seen:
            if seen[key] != job:
                raise JobsFileError(
                    f"two jobs write {job.backend}/{job.name} with different inputs or settings; "
                    "give the files distinct names"
                )
            continue
        seen[key] = job
        out.append(job)
    return out


def _resolve(base: Path, value: Any, what: str) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise JobsFileError(f"{what} must be a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JobsFileError(f"{what} must be a mapping, got {value!r}")
    return dict(value)


def _from_yaml(p: Path) -> list[Job]:
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise JobsFileError(f"{p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    data = _mapping(data, f"{p}: the top level")
    unknown = sorted(set(data) - {"defaults", "grid", "jobs"})
    if unknown:
        raise JobsFileError(f"{p}: unknown section(s) {', '.join(unknown)}; use defaults, grid, "
                            "jobs")  # fmt: skip
    defaults = _mapping(data.get("defaults"), f"{p}: defaults")
    base = p.parent
    jobs = list(_grid(base, _mapping(data.get("grid"), f"{p}: grid"), defaults))
    listed = data.get("jobs") or []
    if not isinstance(listed, list):
        raise JobsFileError(f"{p}: jobs must be a list")
    for number, entry in enumerate(listed, 1):
        entry = _mapping(entry, f"{p}: job {number}")
        jobs.append(_job(base, entry, defaults, f"{p}: job {number}"))
    return jobs


def _grid(base: Path, grid: dict[str, Any], defaults: dict[str, Any]) -> Iterable[Job]:
    if not grid:
        return
    references = [r if isinstance(r, Mapping) else {"image": r}
                  for r in grid.get("references") or []]  # fmt: skip
    drivings = grid.get("drivings") or []
    backends = [b if isinstance(b, Mapping) else {"name": b}
                for b in grid.get("backends") or ["warp"]]  # fmt: skip
    shared = _mapping(grid.get("settings"), "grid settings")
    for backend in backends:
        for reference in references:
            for driving in drivings:
                entry = {
                    "reference": reference.get("image"), "landmarks": reference.get("landmarks"),
                    "driving": driving, "backend": backend.get("name"),
                    "options": _mapping(backend.get("options"), "grid backend options"),
                    "settings": shared,
                }  # fmt: skip
                yield _job(base, entry, defaults, "grid")


def _job(base: Path, entry: dict[str, Any], defaults: dict[str, Any], what: str) -> Job:
    unknown = sorted(set(entry) - {"reference", "driving", "backend", "landmarks", "options",
                                    "settings"})  # fmt: skip
    if unknown:
        raise JobsFileError(f"{what}: unknown key(s) {', '.join(unknown)}")
    for key in ("reference", "driving"):
        if not entry.get(key):
            raise JobsFileError(f"{what}: no {key}")
    landmarks = entry.get("landmarks")
    return Job(
        reference=_resolve(base, entry["reference"], f"{what}: reference"),
        driving=_resolve(base, entry["driving"], f"{what}: driving"),
        backend=str(entry.get("backend") or "warp"),
        landmarks=_resolve(base, landmarks, f"{what}: landmarks") if landmarks else None,
        options={**_mapping(defaults.get("options"), "default options"),
                 **_mapping(entry.get("options"), f"{what}: options")},
        settings={**_mapping(defaults.get("settings"), "default settings"),
                  **_mapping(entry.get("settings"), f"{what}: settings")},
    )  # fmt: skip


def _from_csv(p: Path) -> list[Job]:
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise JobsFileError(f"{p} is not a readable CSV file: {exc}") from None
    jobs = []
    for number, row in enumerate(rows, 1):
        what = f"{p}: row {number}"
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        options = row.pop("options", "")
        try:
            parsed = json.loads(options) if options else {}
        except json.JSONDecodeError:
            raise JobsFileError(f'{what}: options must be JSON such as {{"steps": 25}}') from None
        entry: dict[str, Any] = {k: row.pop(k, "") for k in ("reference", "driving", "backend",
                                                             "landmarks")}  # fmt: skip
        entry["options"] = parsed
        entry["settings"] = {k: _csv_value(v) for k, v in row.items() if v != ""}
        jobs.append(_job(p.parent, entry, {}, what))
    return jobs


def _csv_value(text: str) -> Any:
    """A CSV cell as JSON when it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
