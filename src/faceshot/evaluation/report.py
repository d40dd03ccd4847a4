"""The figures of an evaluation, what each one means, and the report that holds them.

Every figure faceshot reports is described once, in :data:`FIGURES` (its unit, its direction,
one line of meaning), so the table, the JSON, the web app and ``docs/evaluation.md`` cannot
drift apart: the modules that measure only supply a value or the reason it was not measured.
A figure that could not be measured keeps its place with ``value = None`` and that reason,
rather than disappearing: comparing two backends' reports needs the same rows in both.

The JSON (:meth:`EvalReport.to_json`) has stable keys in a fixed order and never contains NaN
(JSON has no NaN; ``null`` stands for "no value"), so it can be diffed, stored and read back
with :meth:`EvalReport.from_json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "FIGURES",
    "Direction",
    "EvalReport",
    "Figure",
    "FigureInfo",
    "Series",
    "measured",
    "not_measured",
    "report_table",
]

Direction = Literal["lower is better", "higher is better", "for information"]


@dataclass(frozen=True)
class FigureInfo:
    """What a figure is: the same for every report."""

    label: str
    unit: str
    direction: Direction
    meaning: str


LOWER: Direction = "lower is better"
HIGHER: Direction = "higher is better"
INFO: Direction = "for information"

#: Every figure, in report order.  docs/evaluation.md explains each key in detail.
FIGURES: dict[str, FigureInfo] = {
    "point_tracking.nme": FigureInfo(
        "point tracking NME", "inter-ocular", LOWER,
        "mean distance of the landmarks found on the result to the reposed ones, over the "
        "outer-eye-corner distance (the paper's Point-Tracking)",
    ),
    "point_tracking.nme_worst": FigureInfo(
        "worst frame NME", "inter-ocular", LOWER, "the largest per-frame NME",
    ),
    "point_tracking.frames_without_face": FigureInfo(
        "frames without a face", "frames", LOWER,
        "sampled frames of the result where the tracker found no face",
    ),
    "point_tracking.no_face_share": FigureInfo(
        "share without a face", "share", LOWER,
        "frames without a face / frames sampled",
    ),
    "point_tracking.frames_compared": FigureInfo(
        "frames compared", "frames", INFO, "frames whose NME enters the mean",
    ),
    "anatomy.violations": FigureInfo(
        "anatomy violations", "share", LOWER,
        "share of the reposed frames that break an anatomy rule (lips crossed, lids inverted...)",
    ),
    "motion.mouth_correlation": FigureInfo(
        "mouth correlation", "Pearson r", HIGHER,
        "correlation of the sequence's mouth opening with the driving face's",
    ),
    "motion.eye_correlation": FigureInfo(
        "eye correlation", "Pearson r", HIGHER,
        "correlation of the sequence's eye opening with the driving face's",
    ),
    "motion.blink_completion": FigureInfo(
        "blink completion", "ratio", HIGHER,
        "worst driving blink: the sequence's eye closure over the driving eye's (1 = as far)",
    ),
    "stability.result_jitter": FigureInfo(
        "result landmark jitter", "inter-ocular", LOWER,
        "frame-to-frame shimmer of the landmarks found on the result",
    ),
    "stability.sequence_jitter": FigureInfo(
        "sequence jitter", "inter-ocular", LOWER,
        "frame-to-frame shimmer of the reposed landmark sequence",
    ),
    "stability.background_flicker": FigureInfo(
        "background flicker", "0-1", LOWER,
        "mean absolute frame-to-frame change of the pixels outside the face",
    ),
    "identity.similarity": FigureInfo(
        "identity similarity", "cosine", HIGHER,
        "mean CLIP image-embedding similarity of the sampled frames to the reference",
    ),
    "identity.similarity_worst": FigureInfo(
        "worst frame identity", "cosine", HIGHER,
        "the lowest per-frame similarity to the reference",
    ),
}  # fmt: skip


def _finite(value: float | None) -> float | None:
    """``None`` for NaN or infinity: JSON has no NaN, and a NaN figure has no value."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class Figure(BaseModel):
    """One measured (or unmeasured) figure of a report."""

    model_config = ConfigDict(frozen=True)

    key: str
    label: str
    value: float | None
    unit: str
    direction: Direction
    meaning: str
    not_measured: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _no_nan(cls, value: Any) -> float | None:
        return _finite(value)

    def shown(self) -> str:
        """The value as the table shows it (counts without decimals)."""
        if self.value is None:
            return "-"
        if self.unit == "frames":
            return f"{self.value:.0f}"
        return f"{self.value:.4f}"


def measured(key: str, value: float | None, why_not: str = "") -> Figure:
    """The figure ``key`` with ``value``; a NaN or ``None`` value becomes ``why_not``."""
    info = FIGURES[key]
    number = _finite(value)
    return Figure(
        key=key, label=info.label, value=number, unit=info.unit, direction=info.direction,
        meaning=info.meaning, not_measured=None if number is not None else why_not or "no value",
    )  # fmt: skip


def not_measured(key: str, reason: str) -> Figure:
    """The figure ``key`` without a value, saying why."""
    return measured(key, None, reason)


class Series(BaseModel):
    """Per-frame values behind a figure (``None`` where a frame has none), for plots."""

    model_config = ConfigDict(frozen=True)

    frames: list[int]
    values: list[float | None]

    @field_validator("values", mode="before")
    @classmethod
    def _no_nan(cls, values: Any) -> list[float | None]:
        return [_finite(v) for v in values]


class EvalReport(BaseModel):
    """Figures of one result (``faceshot eval``, :func:`faceshot.evaluate`) and what was compared.

    ``tracker`` says how landmarks were found on the result (``detector:dlib``,
    ``matcher:every 4``), ``encoder`` which CLIP image encoder measured identity (``None``: not
    measured), ``timings`` the seconds each step took.
    """

    model_config = ConfigDict(frozen=True)

    result: str
    landmarks: str
    driving: str | None = None
    reference: str | None = None
    frames: int
    fps: float
    size: tuple[int, int]
    tracker: str
    encoder: str | None = None
    figures: list[Figure]
    series: dict[str, Series] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    version: str = ""

    def figure(self, key: str) -> Figure:
        """The figure ``key`` (KeyError lists the keys)."""
        for fig in self.figures:
            if fig.key == key:
                return fig
        raise KeyError(f"no figure {key!r}; known: {', '.join(f.key for f in self.figures)}")

    def value(self, key: str) -> float | None:
        """The value of figure ``key`` (``None`` when not measured)."""
        return self.figure(key).value

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON: fields in declaration order, ``null`` for missing values."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> EvalReport:
        """A report read back from :meth:`to_json`'s output."""
        return cls.model_validate_json(text)


_ARROWS = {LOWER: "↓ lower", HIGHER: "↑ higher", INFO: ""}


def report_table(report: EvalReport) -> Any:
    """The figures as rich renderables: a table (value, unit, which way is better) and notes.

    An unmeasured figure shows ``-`` and a note number; the reasons follow the table once each
    (the two identity figures share theirs), so long reasons do not squeeze the table.  The
    title names the result, its frames and how the landmarks were found on it.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{report.result}: {report.frames} frames at {report.fps:g} fps, "
        f"{report.size[0]}x{report.size[1]}, tracker {report.tracker}",
        title_justify="left",
    )
    for name, justify in (("figure", "left"), ("value", "right"), ("unit", "left"),
                          ("better", "left"), ("note", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    reasons: list[str] = []
    for fig in report.figures:
        note = ""
        if fig.value is None:
            reason = fig.not_measured or "no value"
            if reason not in reasons:
                reasons.append(reason)
            note = f"({reasons.index(reason) + 1})"
        table.add_row(fig.label, fig.shown(), fig.unit, _ARROWS[fig.direction], note)
    notes = [Text(f"({n}) not measured: {why}") for n, why in enumerate(reasons, 1)]
    return Group(table, *notes)
