"""faceshot.evaluation.stability and the matcher tracker, on small videos made in the test.

Flicker is read outside the face only: a still video has none, a face that changes alone has
none, a background that changes has some.  Jitter on the result skips frames without a face.
The matcher tracker runs the real matching code with the cheap patch-descriptor extractor of
the gallery tests, on a face whose position is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from faceshot.evaluation.stability import face_mask, flicker, found_jitter, stability_figures
from faceshot.evaluation.tracking import (
    ResultTracking,
    match_on_result,
    nme_per_frame,
    tracking_figures,
)
from faceshot.matching_api import MatchSettings
from faceshot_core.detection.stability import jitter
from faceshot_core.images import save_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.progress import ProgressEvent
from faceshot_core.synthetic_faces import mean_face
from faceshot_core.video import VideoWriter, iter_frames

SIZE = 128


def lossless(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    with VideoWriter(path, fps, quality=10) as writer:  # crf 0: equal frames decode equal
        writer.write_all(frames)
    return path


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Five frames of a face drifting right by 2 px a frame, in a 128x128 picture."""
    face = mean_face(SIZE) * 0.6 + SIZE * 0.2
    return np.stack([face + np.array([2.0 * m, 0.0]) for m in range(5)])


def background(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def test_face_mask_is_the_dilated_hull(faces: np.ndarray) -> None:
    mask = face_mask(faces[0], (SIZE, SIZE, 3))
    x, y = np.round(faces[0].mean(axis=0)).astype(int)
    assert mask[y, x] and not mask[0, 0]
    assert all(mask[y, x] for x, y in np.round(faces[0]).astype(int))
    tight = face_mask(faces[0], (SIZE, SIZE), margin=0.0)
    assert tight.sum() < mask.sum()


def test_flicker_is_zero_when_still_or_when_only_the_face_changes(
    tmp_path: Path, faces: np.ndarray
) -> None:
    still = lossless(tmp_path / "still.mp4", [background(0)] * 5)
    np.testing.assert_array_equal(flicker(still, faces), np.zeros(4))

    frames = []
    for m in range(5):  # new pixels inside the face (as it is in both frames), same outside
        frame = background(0).copy()
        inside = face_mask(faces[m], frame.shape, margin=0.0)
        frame[inside] = background(m + 1)[inside]
        frames.append(frame)
    talking = lossless(tmp_path / "talking.mp4", frames)
    np.testing.assert_array_equal(flicker(talking, faces), np.zeros(4))


def test_flicker_measures_a_changing_background(tmp_path: Path, faces: np.ndarray) -> None:
    events: list[ProgressEvent] = []
    frames = [np.full((SIZE, SIZE, 3), 100 + 10 * (m % 2), np.uint8) for m in range(5)]
    video = lossless(tmp_path / "pulsing.mp4", frames)
    pairs = flicker(video, faces, progress=events.append)
    first, second = (f.astype(float) for f in list(iter_frames(video))[:2])
    step = np.abs(second - first).mean() / 255  # 10 grey levels, as yuv420p keeps them
    assert step == pytest.approx(10 / 255, abs=2 / 255)
    np.testing.assert_allclose(pairs, step, atol=1e-6)
    assert events[-1] == ProgressEvent("flicker", 5, 5)
    tracking = ResultTracking(faces, np.ones(5, bool), np.ones(5, bool), "detector:dlib")
    figures, series = stability_figures(tracking, faces, pairs)
    by_key = {f.key: f for f in figures}
    assert by_key["stability.background_flicker"].value == pytest.approx(step)
    assert by_key["stability.sequence_jitter"].value == pytest.approx(0.0, abs=1e-9)
    assert series["stability.background_flicker"].frames == [1, 2, 3, 4]


def test_result_jitter_uses_only_frames_with_a_face(faces: np.ndarray) -> None:
    noisy = faces + np.random.default_rng(1).normal(0, 0.5, faces.shape)
    found = np.ones(5, bool)
    assert found_jitter(noisy, found) == pytest.approx(jitter(noisy))
    gap = found.copy()
    gap[2] = False  # every triple holds frame 2
    assert np.isnan(found_jitter(np.where(gap[:, None, None], noisy, 1e6), gap))
    sampled = ResultTracking(faces, gap, gap, "matcher:every 2")
    figures, _ = stability_figures(sampled, faces, np.zeros(4))
    result = next(f for f in figures if f.key == "stability.result_jitter")
    assert result.value is None and "needs every frame tracked" in (result.not_measured or "")


def test_nme_is_relative_to_the_outer_eye_corners(faces: np.ndarray) -> None:
    iod = np.linalg.norm(faces[0, 45] - faces[0, 36])
    found = faces + np.array([3.0, 4.0])  # 5 px off everywhere
    np.testing.assert_allclose(nme_per_frame(found, faces), 5.0 / iod)
    missing = found.copy()
    missing[1] = np.nan
    tracking = ResultTracking(missing, np.ones(5, bool), np.arange(5) != 1, "detector:dlib")
    figures, series = tracking_figures(tracking, faces)
    by_key = {f.key: f.value for f in figures}
    assert by_key["point_tracking.nme"] == pytest.approx(5.0 / iod)
    assert by_key["point_tracking.frames_without_face"] == 1
    assert series["point_tracking.nme"].values[1] is None

    nothing = ResultTracking(found * np.nan, np.ones(5, bool), np.zeros(5, bool), "detector:dlib")
    figures, _ = tracking_figures(nothing, faces)
    by_key = {f.key: f for f in figures}
    assert by_key["point_tracking.frames_without_face"].value == 5
    assert by_key["point_tracking.nme"].value is None
    assert (by_key["point_tracking.nme"].not_measured or "").startswith(
        "no face found by the dlib detector on any sampled frame"
    )


class MeanColourEmbedder:
    """The mean colour of a crop, as a unit vector: enough for one-domain galleries."""

    name = "test-mean-colour"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        rows = np.stack([im.reshape(-1, 3).mean(axis=0) + 1.0 for im in images])
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_matcher_tracks_every_nth_frame(
    tmp_path: Path, astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    from faceshot_core.matching.gallery import build_gallery
    from faceshot_core.matching.patch_extractor import LOW_RES, PatchExtractor, shifted

    extractor, embedder = PatchExtractor(**LOW_RES), MeanColourEmbedder()  # type: ignore[arg-type]
    root = tmp_path / "annotated" / "human"
    root.mkdir(parents=True)
    save_image(root / "astronaut.png", astronaut)
    points = np.round(astronaut_points)
    save_landmarks(root / "astronaut.json", FaceLandmarks(points, (512, 512)))
    gallery = build_gallery(tmp_path / "annotated", extractor, embedder, tmp_path / "gallery")

    moves = [(4 * m, -2 * m) for m in range(5)]
    video = lossless(tmp_path / "moving.mp4", [shifted(astronaut, *d) for d in moves])
    reposed = np.stack([points + d for d in moves])
    events: list[ProgressEvent] = []
    tracking = match_on_result(video, 5, MatchSettings(), every=2, models=(extractor, embedder),
                               gallery=gallery, progress=events.append)  # fmt: skip
    assert tracking.tracker == "matcher:every 2"
    assert tracking.sampled.tolist() == [True, False, True, False, True]
    assert events[-1] == ProgressEvent("matching", 3, 3)
    figures, series = tracking_figures(tracking, reposed)
    by_key = {f.key: f.value for f in figures}
    assert by_key["point_tracking.nme"] < 0.05
    assert by_key["point_tracking.frames_compared"] == 3
    assert by_key["point_tracking.frames_without_face"] == 0
    assert series["point_tracking.nme"].frames == [0, 2, 4]
