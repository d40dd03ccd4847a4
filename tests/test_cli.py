"""The command line: the whole flow, and one-line errors with exit code 2 for user mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceshot.cli.main import main
from faceshot_core.landmark_files import load_face, load_sequence, save_landmarks
from faceshot_core.synthetic import write_motion_clip
from faceshot_core.video import probe_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> tuple[Path, Path]:
    """A 16-frame driving clip of the astronaut and her frame-0 landmarks (JSON)."""
    from faceshot.pipeline import detect_reference

    folder = tmp_path_factory.mktemp("clip")
    face = detect_reference(astronaut)
    video = folder / "drive.mp4"
    write_motion_clip(video, astronaut, face.points, num_frames=16, fps=16)
    ref = save_landmarks(folder / "ref.json", face)
    return video, ref


def run(*args: object) -> int:
    return main([str(a) for a in args])


def test_detect_then_retarget(tmp_path: Path, clip: tuple[Path, Path]) -> None:
    video, ref = clip
    before = video.read_bytes()
    assert (
        run("detect", video, "-o", tmp_path / "d.npz", "--overlay", tmp_path / "o.mp4", "-q") == 0
    )
    driving = load_sequence(tmp_path / "d.npz")
    assert len(driving) == 16 and driving.fps == pytest.approx(16)
    assert probe_video(tmp_path / "o.mp4").frame_count == 16
    assert video.read_bytes() == before  # inputs are never modified
    assert sorted(p.name for p in video.parent.iterdir()) == ["drive.mp4", "ref.json"]

    code = run(
        "retarget",
        "--reference-landmarks",
        ref,
        "--driving",
        tmp_path / "d.npz",
        "-o",
        tmp_path / "seq.json",
        "-q",
    )
    assert code == 0
    seq = load_sequence(tmp_path / "seq.json")
    np.testing.assert_allclose(seq.points[0], load_face(ref).points, atol=1e-3)

    # the video directly as --driving, with an overlay on a still image
    image = tmp_path / "astro.png"
    from skimage import data

    from faceshot_core.images import save_image

    save_image(image, data.astronaut())
    code = run(
        "retarget",
        "-l",
        ref,
        "-d",
        video,
        "-o",
        tmp_path / "seq2.npz",
        "--overlay-on",
        image,
        tmp_path / "seq2.mp4",
        "--parts",
        "eyes,mouth",
        "-q",
    )
    assert code == 0
    assert probe_video(tmp_path / "seq2.mp4").frame_count == 16


def test_landmarks_detect_convert_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skimage import data

    from faceshot_core.images import save_image

    image = save_image(tmp_path / "a.png", data.astronaut())
    assert (
        run(
            "landmarks",
            "detect",
            image,
            "-o",
            tmp_path / "a.json",
            "--overlay",
            tmp_path / "a_lm.png",
            "-q",
        )
        == 0
    )
    assert (tmp_path / "a_lm.png").is_file()
    assert run("landmarks", "convert", tmp_path / "a.json", tmp_path / "a.pts") == 0
    assert run("landmarks", "show", tmp_path / "a.pts") == 0  # size from a.png beside it
    assert "one face in a 512x512 image" in capsys.readouterr().out


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, c: ["detect", t / "missing.mp4", "-o", t / "d.npz"], "does not exist"),
        (lambda t, c: ["detect", c[1], "-o", t / "d.npz"], "not a readable video"),
        (lambda t, c: ["detect", c[0], "-o", t / "nofolder" / "d.npz"], "does not exist"),
        (lambda t, c: ["detect", c[0], "-o", c[1]], "already exists"),
        (
            lambda t, c: ["retarget", "-l", c[0], "-d", c[0], "-o", t / "s.npz"],
            "unknown landmark format .mp4",
        ),
        (
            lambda t, c: ["retarget", "-l", c[1], "-d", c[0], "-o", t / "s.npz", "--parts", "ears"],
            "unknown part",
        ),
        (
            lambda t, c: ["retarget", "-l", c[1], "-d", c[0], "-o", t / "s.xyz"],
            "unknown landmark format .xyz",
        ),
        (lambda t, c: ["landmarks", "show", c[1], "--image-size", "big"], "WIDTHxHEIGHT"),
        (lambda t, c: ["nonsense"], "No such command"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tmp_path: Path,
    clip: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    make_args: object,
    message: str,
) -> None:
    args = make_args(tmp_path, clip)  # type: ignore[operator]
    assert run(*args) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "s.npz").exists()


def test_no_face_in_video_is_a_clear_error(
    tmp_path: Path, chelsea: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceshot_core.video import write_video

    video = write_video(tmp_path / "cat.mp4", [chelsea] * 4, fps=4)
    assert run("detect", video, "-o", tmp_path / "d.npz", "-q") == 2
    assert "no face" in _error_line(capsys).lower()
    assert not (tmp_path / "d.npz").exists()


def test_wrong_shape_reference(
    tmp_path: Path, clip: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((5, 2)))
    code = run(
        "retarget",
        "-l",
        tmp_path / "bad.npy",
        "-d",
        clip[0],
        "-o",
        tmp_path / "s.npz",
        "--image-size",
        "512x512",
    )
    assert code == 2
    assert "expected points of shape [68, 2]" in _error_line(capsys)


def test_overlay_size_mismatch(
    tmp_path: Path, clip: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from faceshot_core.images import save_image

    small = save_image(tmp_path / "small.png", np.zeros((100, 80, 3), np.uint8))
    code = run(
        "retarget",
        "-l",
        clip[1],
        "-d",
        clip[0],
        "-o",
        tmp_path / "s.npz",
        "--overlay-on",
        small,
        tmp_path / "o.mp4",
    )
    assert code == 2
    assert "512x512 image, but the image is 80x100" in _error_line(capsys)
    assert not (tmp_path / "s.npz").exists()


def test_help_explains_and_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "faceshot", "retarget", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--reference-landmarks" in proc.stdout and "neutral pose" in proc.stdout
    cmd = [sys.executable, "-m", "faceshot", "detect", "/no/such.mp4", "-o", "x.npz"]
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("demo", "-o", tmp_path, "--frames", "12") == 0
    err = capsys.readouterr().err
    assert "error vs the known poses" in err
    seq = load_sequence(tmp_path / "cat_landmarks.npz")
    assert len(seq) == 12 and seq.image_size == (451, 300)
    assert probe_video(tmp_path / "cat.mp4").frame_count == 12
    assert probe_video(tmp_path / "cat_compare.mp4").frame_count == 12
    # the README's command, run a second time: the demo replaces its own files, nothing else
    (tmp_path / "notes.txt").write_text("mine")
    assert run("demo", "-o", tmp_path, "--frames", "10", "-q") == 0
    assert probe_video(tmp_path / "cat.mp4").frame_count == 10
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


def test_demo_leaves_files_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cat.mp4").write_text("my own cat video")
    assert run("demo", "-o", tmp_path, "--frames", "4", "-q") == 2
    assert "holds cat.mp4, not made by faceshot demo" in _error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["cat.mp4"]  # untouched, nothing added
    assert (tmp_path / "cat.mp4").read_text() == "my own cat video"


@pytest.mark.parametrize(("name", "fmt"), [("still.png", "PNG"), ("still.jpg", "JPEG")])
def test_still_image_as_driving_is_refused(
    tmp_path: Path,
    clip: tuple[Path, Path],
    astronaut: np.ndarray,
    capsys: pytest.CaptureFixture[str],
    name: str,
    fmt: str,
) -> None:
    from faceshot_core.images import save_image

    still = save_image(tmp_path / name, astronaut)
    expected = (
        f"{still} is a still image ({fmt}), not a video; faceshot needs a driving video "
        "(or landmarks saved by `faceshot detect`)"
    )
    ref = clip[1]
    commands = [
        ["detect", still, "-o", tmp_path / "d.npz"],
        ["retarget", "-l", ref, "-d", still, "-o", tmp_path / "s.npz"],
        ["run", "-r", still, "-l", ref, "-d", still, "-o", tmp_path / "out.mp4", "-q"],
    ]
    for args in commands:
        assert run(*args) == 2, args
        assert _error_line(capsys) == f"faceshot: error: {expected}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_landmarks_detect_without_a_face_gives_its_own_hint(
    tmp_path: Path, chelsea: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    from faceshot_core.images import save_image

    cat = save_image(tmp_path / "cat.png", chelsea)
    assert run("landmarks", "detect", cat, "-o", tmp_path / "cat.json") == 2
    line = _error_line(capsys)
    assert "no face found" in line
    assert "--reference-landmarks" not in line  # an option of `run`, not of this command
    assert f"faceshot landmarks match {cat} -o {tmp_path / 'cat.json'} --gallery DIR" in line
    assert "docs/landmark-format.md" in line
    assert not (tmp_path / "cat.json").exists()
