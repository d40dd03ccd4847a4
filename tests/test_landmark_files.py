"""Landmark files: round trips in every format and clear errors at the boundary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceshot_core.errors import InvalidLandmarksError, LandmarkFileError, MediaError
from faceshot_core.landmark_files import load_face, load_landmarks, load_sequence, save_landmarks
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence


@pytest.mark.parametrize("suffix", [".json", ".npz", ".npy", ".pts", ".txt"])
def test_face_round_trip(tmp_path: Path, random_face: np.ndarray, suffix: str) -> None:
    face = FaceLandmarks(random_face, (512, 512))
    path = save_landmarks(tmp_path / f"ref{suffix}", face)
    back = load_landmarks(path, image_size=None if suffix in (".json", ".npz") else (512, 512))
    assert isinstance(back, FaceLandmarks)
    assert back.image_size == (512, 512)
    np.testing.assert_allclose(back.points, face.points, atol=1e-3)


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_sequence_round_trip_keeps_fps_and_flags(
    tmp_path: Path, random_face: np.ndarray, suffix: str
) -> None:
    pts = np.stack([random_face + i for i in range(5)])
    flags = np.array([False, True, True, False, False])
    seq = LandmarkSequence(pts, (640, 480), fps=29.97, interpolated=flags)
    back = load_sequence(save_landmarks(tmp_path / f"seq{suffix}", seq))
    assert back.fps == pytest.approx(29.97)
    assert back.image_size == (640, 480)
    np.testing.assert_array_equal(back.flags, flags)
    np.testing.assert_allclose(back.points, pts, atol=1e-3)


def test_pts_is_one_based_and_matches_ibug_layout(tmp_path: Path, random_face: np.ndarray) -> None:
    path = save_landmarks(tmp_path / "face.pts", FaceLandmarks(random_face, (512, 512)))
    lines = path.read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points: 68", "{"] and lines[-1] == "}"
    x, y = (float(v) for v in lines[3].split())
    assert (x, y) == pytest.approx((random_face[0, 0] + 1, random_face[0, 1] + 1), abs=1e-3)


def test_pts_takes_image_size_from_same_stem_image(tmp_path: Path, random_face: np.ndarray) -> None:
    Image.new("RGB", (600, 700)).save(tmp_path / "img.png")
    save_landmarks(tmp_path / "img.pts", FaceLandmarks(random_face, (600, 700)))
    assert load_face(tmp_path / "img.pts").image_size == (600, 700)


def test_pts_without_size_says_how_to_give_it(tmp_path: Path, random_face: np.ndarray) -> None:
    save_landmarks(tmp_path / "lonely.pts", FaceLandmarks(random_face, (512, 512)))
    with pytest.raises(LandmarkFileError, match="does not record the image size"):
        load_landmarks(tmp_path / "lonely.pts")


@pytest.mark.shared_data
def test_shared_data_pts_files_load(shared_data: Path) -> None:
    files = sorted((shared_data / "faces").glob("*.pts"))
    assert files
    for pts in files:
        face = load_face(pts)  # size from the image beside it
        assert face.points.shape == (68, 2)
        assert face.points.min() >= 0 and face.points[:, 0].max() < face.image_size[0]


@pytest.mark.shared_data
def test_shared_data_caricature_txt_loads(shared_data: Path) -> None:
    txt = shared_data / "caricatures" / "caricature_13.txt"
    face = load_face(txt)
    assert face.image_size == (600, 781)


def _write_json(path: Path, **fields: object) -> Path:
    path.write_text(json.dumps(fields))
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_size": [512, 512], "points": [[1, 2]] * 67}, r"shape \[68, 2\].*\[67, 2\]"),
        ({"image_size": [512, 512], "points": [[1, 2, 3]] * 68}, r"\[68, 3\]"),
        ({"image_size": [512, 512], "points": [[1, 2]] * 67 + [["a", 2]]}, "must be numbers"),
        ({"image_size": [512, 512], "points": [[1, 2]] * 67 + [[5000, 2]]}, "far outside"),
        ({"image_size": [0, 512], "points": [[1, 2]] * 68}, "positive"),
        ({"image_size": [512, 512], "points": [[1, 2]] * 68, "fps": 25}, "sequences"),
        (
            {"image_size": [512, 512], "points": [[[1, 2]] * 68] * 2, "interpolated": [True]},
            "2 frames but 1",
        ),
        ({"image_size": [512, 512], "points": [[1, 2]] * 68, "extra": 1}, "extra"),
        ({"points": [[1, 2]] * 68}, "missing field"),
        ({"format": "other", "image_size": [9, 9], "points": []}, "not a faceshot"),
    ],
)
def test_json_errors_name_file_and_problem(
    tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    path = _write_json(tmp_path / "bad.json", **fields)
    with pytest.raises((InvalidLandmarksError, LandmarkFileError), match=message) as info:
        load_landmarks(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_nan_is_rejected_with_its_position(tmp_path: Path, random_face: np.ndarray) -> None:
    pts = np.stack([random_face] * 3)
    pts[2, 40, 1] = np.nan
    np.save(tmp_path / "nan.npy", pts)
    with pytest.raises(InvalidLandmarksError, match="frame 2, point 40"):
        load_landmarks(tmp_path / "nan.npy", image_size=(512, 512))


def test_wrong_shape_npz_and_garbage_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "shape.npz", points=np.zeros((10, 5, 2)), image_size=[10, 10])
    with pytest.raises(InvalidLandmarksError, match=r"\[M, 68, 2\]|\[68, 2\]"):
        load_landmarks(tmp_path / "shape.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(LandmarkFileError, match=r"not a readable \.npz"):
        load_landmarks(tmp_path / "garbage.npz")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(LandmarkFileError, match="invalid JSON at line 1"):
        load_landmarks(tmp_path / "x.json")
    with pytest.raises(LandmarkFileError, match="does not exist"):
        load_landmarks(tmp_path / "missing.json")


def test_unknown_suffix_is_refused(tmp_path: Path, random_face: np.ndarray) -> None:
    (tmp_path / "f.csv").write_text("1,2\n")
    with pytest.raises(LandmarkFileError, match=r"unknown landmark format \.csv"):
        load_landmarks(tmp_path / "f.csv")
    with pytest.raises(LandmarkFileError, match="unknown landmark format"):
        save_landmarks(tmp_path / "f.csv", FaceLandmarks(random_face, (512, 512)))


def test_image_size_mismatch(tmp_path: Path, random_face: np.ndarray) -> None:
    path = save_landmarks(tmp_path / "r.json", FaceLandmarks(random_face, (512, 512)))
    with pytest.raises(InvalidLandmarksError, match="512x512 image, but the image is 600x600"):
        load_landmarks(path, image_size=(600, 600))


def test_sequence_refused_where_one_face_expected(tmp_path: Path, random_face: np.ndarray) -> None:
    seq = LandmarkSequence(np.stack([random_face] * 2), (512, 512))
    path = save_landmarks(tmp_path / "s.npz", seq)
    with pytest.raises(InvalidLandmarksError, match="sequence of 2 frames"):
        load_face(path)
    with pytest.raises(LandmarkFileError, match="holds one face"):
        save_landmarks(tmp_path / "s.pts", seq)


def test_saving_is_atomic_and_respects_overwrite(tmp_path: Path, random_face: np.ndarray) -> None:
    face = FaceLandmarks(random_face, (512, 512))
    path = save_landmarks(tmp_path / "a.json", face)
    before = path.read_bytes()
    with pytest.raises(MediaError, match="already exists"):
        save_landmarks(path, face, overwrite=False)
    assert path.read_bytes() == before
    with pytest.raises(MediaError, match="does not exist"):
        save_landmarks(tmp_path / "nope" / "a.json", face)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_arrays_are_read_only_float32(random_face: np.ndarray) -> None:
    face = FaceLandmarks(random_face.astype(np.float64), (512, 512))
    assert face.points.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        face.points[0, 0] = 1.0
