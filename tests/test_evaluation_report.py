"""faceshot.evaluation.report: figures, JSON without NaN, the table, and their documentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from faceshot.evaluation.report import (
    FIGURES,
    EvalReport,
    Series,
    measured,
    not_measured,
    report_table,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"


def sample_report() -> EvalReport:
    return EvalReport(
        result="cat.mp4",
        landmarks="cat_landmarks.npz",
        frames=3,
        fps=25.0,
        size=(512, 512),
        tracker="detector:dlib",
        figures=[
            measured("point_tracking.nme", 0.0123),
            measured("point_tracking.frames_without_face", 1),
            measured("motion.blink_completion", float("nan"), "the driving face does not blink"),
            not_measured("identity.similarity", "no CLIP image encoder found"),
        ],
        series={"point_tracking.nme": Series(frames=[0, 1, 2], values=[0.01, float("nan"), 0.02])},
        timings={"total": 1.5},
    )


def test_figures_carry_their_description_and_nan_becomes_not_measured() -> None:
    fig = measured("stability.background_flicker", 0.01)
    info = FIGURES["stability.background_flicker"]
    assert (fig.label, fig.unit, fig.direction, fig.meaning) == (
        info.label, info.unit, info.direction, info.meaning,
    )  # fmt: skip
    assert fig.not_measured is None
    nan = measured("motion.eye_correlation", float("inf"), "undefined")
    assert nan.value is None and nan.not_measured == "undefined"
    assert {f.direction for f in map(lambda k: measured(k, 0.0), FIGURES)} <= {
        "lower is better", "higher is better", "for information",
    }  # fmt: skip


def test_json_round_trip_has_stable_keys_and_null_for_nan() -> None:
    report = sample_report()
    text = report.to_json()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert list(data) == [
        "result", "landmarks", "driving", "reference", "frames", "fps", "size", "tracker",
        "encoder", "figures", "series", "timings", "version",
    ]  # fmt: skip
    assert list(data["figures"][0]) == [
        "key", "label", "value", "unit", "direction", "meaning", "not_measured",
    ]  # fmt: skip
    assert data["figures"][2]["value"] is None
    assert data["series"]["point_tracking.nme"]["values"] == [0.01, None, 0.02]
    back = EvalReport.from_json(text)
    assert back == report
    assert back.value("point_tracking.nme") == 0.0123
    assert back.figure("identity.similarity").not_measured == "no CLIP image encoder found"
    with pytest.raises(KeyError, match="no figure 'nope'"):
        back.figure("nope")


def test_table_shows_values_directions_and_reasons() -> None:
    console = Console(width=200, record=True)
    console.print(report_table(sample_report()))
    text = console.export_text()
    assert "point tracking NME" in text and "0.0123" in text and "↓ lower" in text
    assert "(1) not measured: the driving face does not blink" in text
    assert "(2) not measured: no CLIP image encoder found" in text
    assert text.count("not measured") == 2
    assert "tracker detector:dlib" in text


def test_every_figure_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for key, info in FIGURES.items():
        assert f"`{key}`" in docs, key
        assert info.direction in docs
