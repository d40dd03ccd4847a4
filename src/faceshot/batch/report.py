"""What a batch leaves besides the videos: ``report.csv``, ``report.json``, contact sheets.

The report has one row per job, read back from the jobs' own records, so a rerun that skipped
finished jobs reports them too.  Figures from ``faceshot eval`` become columns
(``eval.<figure>``), which is what makes a grid of backends comparable at a glance.  A contact
sheet per backend shows the middle frame of every result, references down and driving clips
across.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceshot.batch.plan import PlannedJob
from faceshot_core.atomic import atomic_output
from faceshot_core.images import save_image
from faceshot_core.video import iter_frames, probe_video

CELL_HEIGHT = 160
LABEL_HEIGHT = 22
BASE_COLUMNS = ("key", "backend", "reference", "driving", "status", "attempts", "kind", "error",
                "frames", "fps", "device", "seconds")  # fmt: skip


def _figures(record: dict[str, Any]) -> dict[str, Any]:
    """``eval.<key>`` columns from the record's figures (value, or empty when not measured)."""
    figures = (record.get("eval") or {}).get("figures") or []
    out = {}
    for figure in figures:
        if isinstance(figure, dict) and "key" in figure:
            out[f"eval.{figure['key']}"] = figure.get("value")
    return out


def rows(planned: list[PlannedJob], outcomes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per job: its record on disk (done earlier or now), or its outcome of this run."""
    table = []
    for job in planned:
        record = job.record() or {}
        if record.get("fingerprint") != job.fingerprint:
            record = {}
        outcome = outcomes.get(job.key, {})
        status = record.get("status") or outcome.get("status") or "not run"
        timings = record.get("timings") or outcome.get("timings") or {}
        table.append({
            "key": job.key, "backend": job.job.backend, "reference": str(job.job.reference),
            "driving": str(job.job.driving), "status": status,
            "attempts": outcome.get("attempts", 0 if outcome else ""),
            "kind": record.get("kind") or outcome.get("kind", ""),
            "error": record.get("error") or outcome.get("error", ""),
            "frames": record.get("frames", ""), "fps": record.get("fps", ""),
            "device": record.get("device", ""),
            "seconds": round(float(timings.get("job", 0.0)), 3) if timings else "",
            **_figures(record),
        })  # fmt: skip
    return table


def write_reports(outdir: Path, table: list[dict[str, Any]]) -> tuple[Path, Path]:
    """``report.csv`` and ``report.json`` in ``outdir`` (atomically)."""
    columns = list(BASE_COLUMNS) + sorted({k for row in table for k in row} - set(BASE_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in table:
        writer.writerow({k: "" if row.get(k) is None else row.get(k, "") for k in columns})
    csv_path, json_path = outdir / "report.csv", outdir / "report.json"
    with atomic_output(csv_path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps({"jobs": table}, indent=1, default=str) + "\n", encoding="utf-8")
    return csv_path, json_path


def middle_frame(video: Path) -> np.ndarray | None:
    """The frame halfway through ``video`` (streamed: one frame in memory), or ``None``."""
    try:
        middle = probe_video(video).frame_count // 2
        for index, frame in enumerate(iter_frames(video)):
            if index >= middle:
                return frame
    except Exception:  # a sheet is a summary: an unreadable result is shown as a blank cell
        return None
    return None


def _cell(frame: np.ndarray | None, label: str, width: int) -> np.ndarray:
    cell = np.full((CELL_HEIGHT + LABEL_HEIGHT, width, 3), 32, dtype=np.uint8)
    if frame is not None:  # fitted inside the cell, never cropped
        h, w = frame.shape[:2]
        scale = min(CELL_HEIGHT / h, width / w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        scaled = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        x, y = (width - size[0]) // 2, LABEL_HEIGHT + (CELL_HEIGHT - size[1]) // 2
        cell[y : y + size[1], x : x + size[0]] = scaled
    cv2.putText(cell, label[:40], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (230, 230, 230), 1,
                cv2.LINE_AA)  # fmt: skip
    return cell


def contact_sheets(outdir: Path, planned: list[PlannedJob]) -> list[Path]:
    """One ``contact_<backend>.png`` per backend: references down, driving clips across."""
    written = []
    for backend in sorted({p.job.backend for p in planned}):
        jobs = [p for p in planned if p.job.backend == backend]
        references = list(dict.fromkeys(p.job.reference for p in jobs))
        drivings = list(dict.fromkeys(p.job.driving for p in jobs))
        width = round(CELL_HEIGHT * 4 / 3)
        by_pair = {(p.job.reference, p.job.driving): p for p in jobs}
        grid = []
        for reference in references:
            row = []
            for driving in drivings:
                job = by_pair.get((reference, driving))
                done = job is not None and job.is_done()
                frame = middle_frame(job.result) if done and job is not None else None
                row.append(_cell(frame, f"{reference.stem} / {driving.stem}", width))
            grid.append(np.concatenate(row, axis=1))
        path = outdir / f"contact_{backend}.png"
        save_image(path, np.concatenate(grid, axis=0))
        written.append(path)
    return written
