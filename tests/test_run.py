"""`faceshot run` / `faceshot.run`: end to end, and every kind of bad input."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import imageio_ffmpeg
import numpy as np
import pytest

import faceshot
from faceshot.cli.main import main
from faceshot.pipeline import detect_reference
from faceshot_backends import Capabilities, PerFrameBackend
from faceshot_core.images import save_image
from faceshot_core.landmark_files import load_face, load_sequence
from faceshot_core.sample_data import chelsea_landmarks_path
from faceshot_core.synthetic import write_motion_clip
from faceshot_core.video import probe_video, write_video


def _tone(path: Path, seconds: float) -> Path:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
           f"sine=frequency=330:duration={seconds}", "-c:a", "aac", str(path)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray,
           chelsea: np.ndarray) -> dict[str, Path]:  # fmt: skip
    """A 10-frame driving clip with audio, the cat image and its landmarks."""
    folder = tmp_path_factory.mktemp("inputs")
    tone = _tone(folder / "tone.m4a", 2.0)
    face = detect_reference(astronaut)
    video = folder / "drive.mp4"
    write_motion_clip(video, astronaut, face.points, num_frames=10, fps=10, audio_from=tone)
    return {
        "video": video,
        "cat": save_image(folder / "cat.png", chelsea),
        "cat_lm": chelsea_landmarks_path(),
        "person": save_image(folder / "person.png", astronaut),
        "folder": folder,
    }


def test_python_api_end_to_end(tmp_path: Path, inputs: dict[str, Path]) -> None:
    before = {p: p.read_bytes() for p in (inputs["video"], inputs["cat"])}
    result = faceshot.run(
        inputs["cat"], inputs["video"], output=tmp_path / "cat.mp4", backend="landmarks",
        reference_landmarks=inputs["cat_lm"], compare=True, overlay=True, options={"style": "pose"},
    )  # fmt: skip
    info = probe_video(result.output)
    assert (info.frame_count, info.fps, info.has_audio) == (10, 10.0, True)
    assert (info.width, info.height) == (452, 300)  # 451 padded to even
    assert probe_video(result.compare).frame_count == 10
    assert probe_video(result.overlay).frame_count == 10
    saved = load_sequence(result.landmarks_file)
    np.testing.assert_allclose(saved.points, result.sequence.points)
    np.testing.assert_allclose(saved.points[0], load_face(inputs["cat_lm"]).points, atol=1e-4)
    assert set(result.timings) >= {"driving_landmarks", "retarget", "animate_and_encode", "total"}
    assert all(p.read_bytes() == b for p, b in before.items())  # inputs never modified
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cat.mp4", "cat_compare.mp4", "cat_landmarks.npz", "cat_overlay.mp4"]  # fmt: skip


def test_cli_run_with_detected_reference_and_saved_driving(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    assert main(["detect", str(inputs["video"]), "-o", str(tmp_path / "d.npz"), "-q"]) == 0
    code = main(["run", "-r", str(inputs["person"]), "-d", str(tmp_path / "d.npz"),
                 "-o", str(tmp_path / "p.mp4"), "-b", "landmarks", "--max-frames", "4",
                 "--compare", "-q"])  # fmt: skip
    assert code == 0
    assert probe_video(tmp_path / "p.mp4").frame_count == 4
    assert not probe_video(tmp_path / "p.mp4").has_audio  # saved landmarks carry no audio
    assert probe_video(tmp_path / "p_compare.mp4").frame_count == 4


def test_backends_command_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "-v"]) == 0
    out = capsys.readouterr().out
    assert "warp" in out and "landmarks" in out and "ready" in out and "style" in out


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _bad(name: str, folder: Path) -> Path:
    """Bad inputs, made on demand."""
    if name == "truncated":
        good = write_video(folder / "good.mp4", [np.zeros((64, 64, 3), np.uint8)] * 20, fps=10)
        bad = folder / "truncated.mp4"
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return bad
    if name == "zero_frames":
        bad = folder / "zero.mp4"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
               "color=c=black:s=64x64:d=1", "-frames:v", "0", str(bad)]  # fmt: skip
        subprocess.run(cmd, check=True)
        return bad
    if name == "text_as_video":
        bad = folder / "notes.mp4"
        bad.write_text("not a video")
        return bad
    if name == "text_as_image":
        bad = folder / "notes.png"
        bad.write_text("not an image")
        return bad
    if name == "wrong_shape":
        bad = folder / "wrong.npy"
        np.save(bad, np.zeros((12, 2)))
        return bad
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"backend": "nope"}, "unknown backend 'nope'; available: "),  # plugins sort in too
        ({"driving": "truncated"}, "not a readable video"),
        ({"driving": "zero_frames"}, "no video stream"),
        ({"driving": "text_as_video"}, "not a readable video"),
        ({"reference": "text_as_image"}, "not a readable image"),
        ({"landmarks": "wrong_shape"}, "expected points of shape [68, 2], got [12, 2]"),
        ({"output": "missing_folder"}, "does not exist"),
        ({"output": "unwritable"}, "cannot write in /sys"),
        ({"output": "exists"}, "already exists (use --overwrite"),
        ({"option": "colour=red"}, "backend 'warp' has no option 'colour'"),
        ({"option": "mouth_interior=maybe"}, "option 'mouth_interior'"),
        ({"output": "not_mp4"}, "must be an .mp4 file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_partial_file(
    tmp_path: Path, inputs: dict[str, Path], case: dict[str, str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    reference, driving = inputs["cat"], inputs["video"]
    landmarks: Path = inputs["cat_lm"]
    output = tmp_path / "out.mp4"
    if "driving" in case:
        driving = _bad(case["driving"], tmp_path)
    if "reference" in case:
        reference = _bad(case["reference"], tmp_path)
    if "landmarks" in case:
        landmarks = _bad(case["landmarks"], tmp_path)
    if case.get("output") == "missing_folder":
        output = tmp_path / "no" / "out.mp4"
    elif case.get("output") == "unwritable":
        output = Path("/sys/faceshot-test-out.mp4")
    elif case.get("output") == "exists":
        output.write_bytes(b"keep me")
    elif case.get("output") == "not_mp4":
        output = tmp_path / "out.avi"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    args = ["run", "-r", str(reference), "-d", str(driving), "-l", str(landmarks),
            "-o", str(output), "-b", case.get("backend", "warp"), "-q"]  # fmt: skip
    if "option" in case:
        args += ["--option", case["option"]]
    assert main(args) == 2
    assert message in _error(capsys)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing new, nothing partial
    if case.get("output") == "exists":
        assert output.read_bytes() == b"keep me"


def test_reference_without_face_or_landmarks_says_how_to_fix(
    tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "-r", str(inputs["cat"]), "-d", str(inputs["video"]),
            "-o", str(tmp_path / "o.mp4"), "-q"]  # fmt: skip
    assert main(args) == 2
    assert "--reference-landmarks" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


# --- the runner honours the backend's capabilities; a crashing backend leaves nothing ---------


class _Clip(PerFrameBackend):
    name: ClassVar[str] = "clip4"
    description: ClassVar[str] = "at most 4 frames at once"
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="clip", max_frames=4)

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        return np.zeros((8, 8, 3), np.uint8)


class _Crashes(_Clip):
    name: ClassVar[str] = "crashes"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("the plugin's own bug")


class _WrongSize(_Crashes):
    name: ClassVar[str] = "wrong_size"

    def animate(self, request: Any, progress: Any = None) -> Iterator[np.ndarray]:
        yield np.zeros((5, 5, 3), np.uint8)


@pytest.fixture
def test_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceshot_backends import registry
    from faceshot_core.plugins import Entry, PluginInfo, Registry

    real = registry.backend_registry()
    fake: Registry[Any] = Registry("backend", dict(real.entries), {}, list(real.plugins))
    for cls in (_Clip, _Crashes, _WrongSize):
        fake.add(Entry(cls.name, cls, PluginInfo("test")))
    monkeypatch.setattr(registry, "backend_registry", lambda: fake)


def test_clip_backend_frame_limit(
    tmp_path: Path, inputs: dict[str, Path], test_backends: None,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    args = ["run", "-r", str(inputs["cat"]), "-l", str(inputs["cat_lm"]), "-d",
            str(inputs["video"]), "-b", "clip4", "-q"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "a.mp4")]) == 2
    assert "at most 4 frames at once and the driving has 10; use max_frames=4" in _error(capsys)
    assert list(tmp_path.iterdir()) == []
    assert main([*args, "-o", str(tmp_path / "a.mp4"), "--max-frames", "4"]) == 0
    assert probe_video(tmp_path / "a.mp4").frame_count == 4


@pytest.mark.parametrize(("backend", "message"), [
    ("crashes", "backend 'crashes' failed while animating: ZeroDivisionError: the plugin's"),
    ("wrong_size", "backend 'wrong_size' yielded a uint8 frame of shape [5, 5, 3]"),
])  # fmt: skip
def test_a_failing_backend_is_one_line_exit_1_and_no_output(
    tmp_path: Path, inputs: dict[str, Path], test_backends: None, backend: str, message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    args = ["run", "-r", str(inputs["cat"]), "-l", str(inputs["cat_lm"]), "-d",
            str(inputs["video"]), "-b", backend, "-o", str(tmp_path / "a.mp4"),
            "--compare", "-q"]  # fmt: skip
    assert main(args) == 1
    error = _error(capsys)
    assert message in error and "FACESHOT_DEBUG=1" in error
    assert list(tmp_path.iterdir()) == []  # no video, no hidden temporary file


def test_a_misspelt_setting_is_named(tmp_path: Path, inputs: dict[str, Path]) -> None:
    from faceshot.settings import SettingsError

    with pytest.raises(SettingsError, match=r"no setting 'compre' \(did you mean 'compare'\?\)"):
        faceshot.run(inputs["cat"], inputs["video"], output=tmp_path / "o.mp4", compre=True)
    with pytest.raises(SettingsError, match=r"no setting 'style'.*options="):
        faceshot.run(inputs["cat"], inputs["video"], output=tmp_path / "o.mp4", style="pose")
    with pytest.raises(SettingsError, match="'head_translation'"):
        faceshot.run(inputs["cat"], inputs["video"], output=tmp_path / "o.mp4",
                     head_translation="sideways")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_run_head_translation_option(tmp_path: Path, inputs: dict[str, Path]) -> None:
    args = ["run", "-r", str(inputs["cat"]), "-l", str(inputs["cat_lm"]), "-d",
            str(inputs["video"]), "-b", "landmarks", "-q"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "f.mp4")]) == 0
    assert main([*args, "-o", str(tmp_path / "p.mp4"), "--head-translation", "pixels"]) == 0
    face = load_sequence(tmp_path / "f_landmarks.npz").points
    pixels = load_sequence(tmp_path / "p_landmarks.npz").points
    assert not np.allclose(face, pixels)  # the cat's face is smaller: scaled shifts differ
    np.testing.assert_allclose(face[0], pixels[0])
