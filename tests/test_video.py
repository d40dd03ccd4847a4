"""Video IO: streaming reads, H.264 writes with audio, atomic outputs, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from faceshot_core.errors import MediaError
from faceshot_core.video import VideoWriter, iter_frames, probe_video, write_video


def _gradient_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.zeros((h, w, 3), dtype=np.uint8)
        frame[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        frame[..., 1] = (i * 20) % 256
        frames.append(frame)
    return frames


def _tone(path: Path, seconds: float) -> Path:
    """A sine tone made by the same ffmpeg binary faceshot uses (real audio, no fixtures)."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={seconds}",
        "-c:a",
        "aac",
        str(path),
    ]
    subprocess.run(cmd, check=True)
    return path


def test_write_then_probe_and_read(tmp_path: Path) -> None:
    frames = _gradient_frames(12)
    out = write_video(tmp_path / "v.mp4", frames, fps=12.5)
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count) == (64, 48, 12)
    assert info.fps == pytest.approx(12.5)
    assert not info.has_audio
    read = list(iter_frames(out))
    assert len(read) == 12
    # lossy, but the content survives: mean absolute error of a few grey levels
    assert np.abs(read[5].astype(int) - frames[5]).mean() < 6


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    out = write_video(tmp_path / "odd.mp4", _gradient_frames(3, w=63, h=47), fps=10)
    info = probe_video(out)
    assert (info.width, info.height) == (64, 48)


def test_audio_of_another_file_is_muxed(tmp_path: Path) -> None:
    tone = _tone(tmp_path / "tone.m4a", 3.0)
    out = write_video(tmp_path / "a.mp4", _gradient_frames(25), fps=25, audio_from=tone)
    info = probe_video(out)
    assert info.has_audio
    assert info.frame_count == 25  # no frame lost to the muxing
    assert info.duration == pytest.approx(1.0, abs=0.15)  # audio cut to the video's length


def test_shorter_audio_keeps_every_frame(tmp_path: Path) -> None:
    tone = _tone(tmp_path / "short.m4a", 0.5)
    out = write_video(tmp_path / "a.mp4", _gradient_frames(30), fps=30, audio_from=tone)
    info = probe_video(out)
    assert info.has_audio and info.frame_count == 30


def test_audio_source_without_audio_is_fine(tmp_path: Path) -> None:
    silent = write_video(tmp_path / "s.mp4", _gradient_frames(5), fps=5)
    out = write_video(tmp_path / "b.mp4", _gradient_frames(5), fps=5, audio_from=silent)
    assert not probe_video(out).has_audio


def test_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    def frames():
        yield from _gradient_frames(3)
        raise RuntimeError("animator crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_video(tmp_path / "x.mp4", frames(), fps=10)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_frame_size_and_no_frames(tmp_path: Path) -> None:
    with (
        pytest.raises(MediaError, match="frame 1 is 32x32"),
        VideoWriter(tmp_path / "m.mp4", 10) as w,
    ):
        w.write(np.zeros((48, 64, 3), np.uint8))
        w.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(MediaError, match="no frames"):
        write_video(tmp_path / "e.mp4", [], fps=10)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_protection(tmp_path: Path) -> None:
    out = write_video(tmp_path / "o.mp4", _gradient_frames(2), fps=10)
    with pytest.raises(MediaError, match="already exists"):
        write_video(out, _gradient_frames(2), fps=10, overwrite=False)
    with pytest.raises(MediaError, match=r"folder .* does not exist"):
        write_video(tmp_path / "no" / "o.mp4", _gradient_frames(2), fps=10)


def test_bad_inputs(tmp_path: Path) -> None:
    good = write_video(tmp_path / "g.mp4", _gradient_frames(30), fps=10)
    truncated = tmp_path / "t.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for bad in (truncated, text):
        with pytest.raises(MediaError, match="not a readable video"):
            probe_video(bad)
        with pytest.raises(MediaError, match="not a readable video"):
            list(iter_frames(bad))
    with pytest.raises(MediaError, match="empty"):
        probe_video(empty)
    with pytest.raises(MediaError, match="does not exist"):
        probe_video(tmp_path / "missing.mp4")
    image = tmp_path / "still.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    assert probe_video(image).frame_count == 1  # a still image is a valid one-frame video


def test_reading_streams(tmp_path: Path) -> None:
    out = write_video(tmp_path / "long.mp4", _gradient_frames(60), fps=30)
    frames = iter_frames(out)
    first = next(frames)
    assert first.shape == (48, 64, 3)
    frames.close()  # stopping early must release ffmpeg cleanly


def test_shared_driving_video_with_audio(shared_data: Path) -> None:
    info = probe_video(shared_data / "videos" / "liveportrait_driving_d18.mp4")
    assert (info.width, info.height, info.fps, info.frame_count) == (480, 480, 30.0, 216)
    assert info.has_audio
