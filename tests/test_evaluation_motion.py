"""faceshot.evaluation.motion: the quality benchmark's checks as a library, on known faces.

The expected numbers were computed with the functions as they stood in
``benchmarks/bench_quality.py`` before they moved here, on the same synthetic sequences: the
move must not change a figure.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from faceshot.evaluation.motion import (
    DrivingLengthError,
    blink_completion,
    correlation,
    driving_points,
    eye_ratio,
    motion_figures,
    violation_share,
)
from faceshot_core.anatomy import openings
from faceshot_core.errors import FaceshotUserError
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.synthetic_faces import mean_face, scale_points, with_eyes_closed, with_mouth_open

BLINK = {15: 0.3, 16: 0.8, 17: 1.0, 18: 0.8, 19: 0.3}


def sequence(face: np.ndarray, mouth: float, blink: float, phase: int = 0) -> np.ndarray:
    """40 frames: the mouth opens and closes twice, the eyes blink once around frame 17."""
    frames = []
    for t in range(40):
        f = with_mouth_open(face, mouth * 0.3 * np.sin(np.pi * (t + phase) / 20) ** 2)
        f = f + BLINK.get(t, 0.0) * blink * (with_eyes_closed(f) - f)
        frames.append(f)
    return np.stack(frames)


@pytest.fixture(scope="module")
def driving() -> np.ndarray:
    return sequence(mean_face(256), 1.0, 1.0)


@pytest.fixture(scope="module")
def character() -> np.ndarray:
    """Bigger eyes that close 70 % as far; a mouth half as wide open, 3 frames ahead."""
    return sequence(scale_points(mean_face(256), range(36, 48), 1.3), 0.5, 0.7, phase=3)


def test_figures_as_the_benchmark_computed_them(driving: np.ndarray, character: np.ndarray) -> None:
    mouth = correlation(openings(character).mouth_ratio, openings(driving).mouth_ratio)
    assert mouth == pytest.approx(0.5877852522924729, abs=1e-12)
    assert correlation(eye_ratio(character), eye_ratio(driving)) == pytest.approx(1.0)
    assert blink_completion(driving, character) == pytest.approx(0.7, abs=1e-12)
    assert blink_completion(driving, driving) == pytest.approx(1.0)
    no_blink = sequence(mean_face(256), 1.0, 0.0)
    assert math.isnan(blink_completion(no_blink, no_blink))
    assert math.isnan(correlation(np.ones(5), np.arange(5.0)))


def test_the_benchmark_uses_these_functions() -> None:
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        import bench_quality
    finally:
        sys.path.remove(str(bench))
    assert bench_quality.correlation is correlation
    assert bench_quality.eye_ratio is eye_ratio
    assert bench_quality.blink_completion is blink_completion


def test_violation_share_counts_frames_breaking_a_rule(character: np.ndarray) -> None:
    assert violation_share(character) == 0.0
    broken = character.copy()
    for m in (4, 30):  # inner lower lip lifted above the upper lip: lips crossed
        broken[m, [65, 66, 67]] = broken[m, [63, 62, 61]] - np.array([0.0, 6.0])
    assert violation_share(broken) == pytest.approx(2 / 40)


def test_motion_figures_with_and_without_driving(
    driving: np.ndarray, character: np.ndarray
) -> None:
    figures = {f.key: f for f in motion_figures(character, driving, "unused")}
    assert figures["anatomy.violations"].value == 0.0
    assert figures["motion.mouth_correlation"].value == pytest.approx(0.5877852522924729)
    assert figures["motion.blink_completion"].value == pytest.approx(0.7)
    assert figures["motion.blink_completion"].direction == "higher is better"

    alone = {f.key: f for f in motion_figures(character, None, "no driving given")}
    assert alone["anatomy.violations"].value == 0.0
    for key in ("motion.mouth_correlation", "motion.eye_correlation", "motion.blink_completion"):
        assert alone[key].value is None and alone[key].not_measured == "no driving given"

    still = np.repeat(driving[:1], 40, axis=0)  # nothing moves: correlations are undefined
    figures = {f.key: f for f in motion_figures(still, still, "unused")}
    assert figures["motion.mouth_correlation"].value is None
    assert "does not move" in (figures["motion.mouth_correlation"].not_measured or "")
    assert figures["motion.blink_completion"].not_measured == "the driving face does not blink"


def test_driving_landmarks_are_cut_to_the_sequence_never_shorter(
    tmp_path: Path, driving: np.ndarray
) -> None:
    path = tmp_path / "driving.npz"
    save_landmarks(path, LandmarkSequence(driving, (256, 256), 25.0))
    assert driving_points(path, 30).shape == (30, 68, 2)
    np.testing.assert_allclose(driving_points(path, 40), driving, atol=1e-3)
    with pytest.raises(DrivingLengthError, match="has 40 frames, the landmarks 41") as info:
        driving_points(path, 41)
    assert isinstance(info.value, FaceshotUserError)
