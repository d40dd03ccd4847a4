"""Video IO: streaming reads, H.264 writes with audio, atomic outputs, clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from faceshot_core.errors import MediaError, StillImageError
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


def test_odd_size_pixels_are_kept_not_resampled(tmp_path: Path) -> None:
    """A 781x501 frame is stored as 782x502 with the picture intact and the edge repeated.

    Fine one-pixel stripes show the difference: resampling 781 columns to 782 shifts them by up
    to half a stripe towards the right edge, which blurs them to grey; padding keeps them.
    """
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:501, :])  # 512 wide: crop to odd sizes below
    frame = np.zeros((501, 781, 3), np.uint8)
    frame[:, :512] = photo[:, :512]
    frame[:, 512:, :] = np.where(np.arange(512, 781) % 2 == 0, 250, 5)[None, :, None]
    out = write_video(tmp_path / "odd.mp4", [frame, frame], fps=10)
    info = probe_video(out)
    assert (info.width, info.height) == (782, 502)
    read = next(iter_frames(out)).astype(int)
    # the photo (top left) and the stripes up to the last column, pixel for pixel
    assert np.abs(read[:501, :512] - frame[:, :512]).mean() < 4
    stripes = read[100:400, 700:781, 1]
    assert np.abs(stripes - frame[100:400, 700:781, 1]).mean() < 25
    assert stripes[:, ::2].mean() - stripes[:, 1::2].mean() > 150  # still crisp, not grey
    # the added column and row repeat the last ones
    assert np.abs(read[:501, 781] - read[:501, 780]).mean() < 25
    assert np.abs(read[501, :781] - read[500, :781]).mean() < 8


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


@pytest.mark.parametrize(
    ("name", "fmt", "kind"),
    [("still.png", "PNG", "PNG"), ("still.jpg", "JPEG", "JPEG"), ("png_renamed.mp4", "PNG", "PNG")],
)
def test_still_image_is_not_a_video(tmp_path: Path, name: str, fmt: str, kind: str) -> None:
    """ffmpeg reads a picture as a one-frame video; faceshot refuses it instead of animating it."""
    from PIL import Image
    from skimage import data

    image = tmp_path / name
    Image.fromarray(data.astronaut()).save(image, format=fmt)
    with pytest.raises(StillImageError, match=rf"is a still image \({kind}\), not a video"):
        probe_video(image)
    # a GIF with several frames is an animation, which ffmpeg reads as a video: still accepted
    gif = tmp_path / "anim.gif"
    frames = [Image.fromarray(f) for f in _gradient_frames(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    assert probe_video(gif).frame_count == 3


def test_reading_streams(tmp_path: Path) -> None:
    out = write_video(tmp_path / "long.mp4", _gradient_frames(60), fps=30)
    frames = iter_frames(out)
    first = next(frames)
    assert first.shape == (48, 64, 3)
    frames.close()  # stopping early must release ffmpeg cleanly


@pytest.mark.shared_data
def test_shared_driving_video_with_audio(shared_data: Path) -> None:
    info = probe_video(shared_data / "videos" / "liveportrait_driving_d18.mp4")
    assert (info.width, info.height, info.fps, info.frame_count) == (480, 480, 30.0, 216)
    assert info.has_audio
