"""Expression controls in `faceshot.run` and the CLI: part strengths, head motion, face choice,
smoothing on by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import faceshot
from faceshot.cli.main import main
from faceshot.pipeline import detect_reference
from faceshot.settings import RunSettings, SettingsError
from faceshot_core.images import save_image
from faceshot_core.landmark_files import load_face, load_sequence, save_landmarks
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.synthetic import write_motion_clip

STILL = {"mouth": 0, "eyes": 0, "brows": 0, "nose": 0, "jaw": 0}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> dict[str, Path]:
    """An 8-frame moving clip of the astronaut, her image and her frame-0 landmarks."""
    folder = tmp_path_factory.mktemp("controls")
    face = detect_reference(astronaut)
    video = folder / "drive.mp4"
    write_motion_clip(video, astronaut, face.points, num_frames=8, fps=8)
    return {
        "video": video,
        "image": save_image(folder / "person.png", astronaut),
        "landmarks": save_landmarks(folder / "person.json", face),
    }


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_run_without_head_motion_or_part_motion_keeps_the_character_still(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    result = faceshot.run(inputs["image"], inputs["video"], output=tmp_path / "still.mp4",
                          backend="landmarks", reference_landmarks=inputs["landmarks"],
                          motion=STILL, head_motion=0.0)  # fmt: skip
    points = result.sequence.points
    np.testing.assert_allclose(points, np.broadcast_to(points[0], points.shape), atol=1e-3)
    moving = faceshot.run(inputs["image"], inputs["video"], output=tmp_path / "moving.mp4",
                          backend="landmarks", reference_landmarks=inputs["landmarks"])  # fmt: skip
    assert np.abs(moving.sequence.points - moving.sequence.points[0]).max() > 2.0


def test_cli_controls_reach_the_retargeting(tmp_path: Path, inputs: dict[str, Path]) -> None:
    common = ["-l", str(inputs["landmarks"]), "-d", str(inputs["video"]), "-q"]
    still = tmp_path / "still.npz"
    motion = "mouth=0,eyes=0,brows=0,nose=0,jaw=0"
    assert main(["retarget", *common, "-o", str(still), "--motion", motion,
                 "--head-motion", "0"]) == 0  # fmt: skip
    points = load_sequence(still).points
    reference = load_face(inputs["landmarks"]).points
    np.testing.assert_allclose(points, np.broadcast_to(reference, points.shape), atol=1e-3)
    raw = tmp_path / "raw.npz"
    assert main(["retarget", *common, "-o", str(raw), "--no-smooth", "--face", "largest"]) == 0
    assert not np.allclose(load_sequence(raw).points, points)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--motion", "nose_tip=1"], "unknown part 'nose_tip'"),
        (["--motion", "mouth"], "PART=NUMBER"),
        (["--motion", "mouth=9"], "between 0 and 5"),
        (["--head-motion", "-1"], "head-motion"),
        (["--face", "left"], "face choice"),
    ],
)
def test_cli_refuses_bad_controls(
    tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
    args: list[str], message: str,
) -> None:  # fmt: skip
    out = tmp_path / "x.npz"
    code = main(["retarget", "-l", str(inputs["landmarks"]), "-d", str(inputs["video"]),
                 "-o", str(out), *args])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_face_index_beyond_the_faces_found_is_one_line(
    tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.npz"
    code = main(["retarget", "-l", str(inputs["landmarks"]), "-d", str(inputs["video"]),
                 "-o", str(out), "--face", "3", "-q"])  # fmt: skip
    assert code == 2  # a user error, like every bad input
    assert "face index 3 is out of range" in _one_line(capsys)
    assert not out.exists()


def test_settings_validate_the_controls() -> None:
    assert RunSettings().smoothing == "one_euro"  # smoothing is on unless turned off
    assert RunSettings(face=(320.0, 180.0), motion={"brows": 1.5}).head_motion == 1.0
    with pytest.raises(SettingsError, match=r"'motion'.*unknown part 'lips'"):
        RunSettings.from_mapping({"motion": {"lips": 1.0}})
    with pytest.raises(SettingsError, match="'head_motion'"):
        RunSettings.from_mapping({"head_motion": 7})


def test_a_reference_with_swapped_lip_labels_is_animated_as_repaired(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    """The animator gets the landmarks that frame 0 of the reposed sequence is, so a 300-W
    style annotation with the inner lips listed upside down does not move the lips at frame 0."""
    face = load_face(inputs["landmarks"])
    swapped = face.points.copy()
    swapped[[61, 62, 63, 65, 66, 67]] = face.points[[67, 66, 65, 63, 62, 61]]
    ann = save_landmarks(tmp_path / "swapped.json",
                         FaceLandmarks(swapped, face.image_size))  # fmt: skip
    result = faceshot.run(inputs["image"], inputs["video"], output=tmp_path / "r.mp4",
                          backend="landmarks", reference_landmarks=ann)  # fmt: skip
    np.testing.assert_array_equal(result.reference_landmarks.points, result.sequence.points[0])
    assert not np.array_equal(result.sequence.points[0], swapped)
