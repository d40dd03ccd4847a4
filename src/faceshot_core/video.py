"""Video reading (streaming, frame by frame) and H.264 writing with optional audio.

Both directions go through the ffmpeg binary that ``imageio-ffmpeg`` ships, so a fresh machine
needs no system ffmpeg.  Reading never holds more than one frame; writing pipes frames straight
into the encoder.  Outputs are written to a temporary file and renamed when complete (see
:mod:`faceshot_core.atomic`), so an interrupted or failed encode leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import imageio_ffmpeg
import numpy as np

from faceshot_core.atomic import atomic_output
from faceshot_core.errors import MediaError


@dataclass(frozen=True)
class VideoInfo:
    """What a player would tell about a video file."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int
    has_audio: bool
    duration: float

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.width, self.height


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's header and count its frames (stream copy, no decoding).

    Raises :class:`MediaError` for a missing, unreadable or zero-frame file.
    """
    p = _existing_file(path)
    meta = _read_meta(p)
    try:
        frame_count, _ = imageio_ffmpeg.count_frames_and_secs(str(p))
    except (RuntimeError, OSError) as exc:
        raise MediaError(f"{p}: cannot count video frames ({_first_line(exc)})") from exc
    if frame_count <= 0:
        raise MediaError(f"{p}: the video has no frames")
    width, height = (int(v) for v in meta["size"])
    fps = float(meta.get("fps") or 0.0)
    if not np.isfinite(fps) or fps <= 0:
        raise MediaError(f"{p}: the video has no valid frame rate")
    duration = float(meta.get("duration") or frame_count / fps)
    return VideoInfo(p, fps, int(frame_count), width, height, "audio_codec" in meta, duration)


def iter_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Yield the frames of a video as RGB uint8 ``[H, W, 3]`` arrays, one at a time.

    A file that yields no frame at all raises :class:`MediaError`; a file that breaks off
    midway (truncated) raises :class:`MediaError` naming the frame where decoding stopped.
    """
    p = _existing_file(path)
    gen = _open_reader(p)
    try:
        try:
            meta = next(gen)
        except (RuntimeError, OSError, StopIteration) as exc:
            raise MediaError(f"{p} is not a readable video ({_first_line(exc)})") from exc
        if "size" not in meta:
            raise MediaError(f"{p} has no video stream")
        width, height = (int(v) for v in meta["size"])
        count = 0
        while True:
            try:
                raw = next(gen)
            except StopIteration:
                break
            except (RuntimeError, OSError) as exc:
                raise MediaError(
                    f"{p}: video decoding failed after {count} frames ({_first_line(exc)})"
                ) from exc
            count += 1
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
        if count == 0:
            raise MediaError(f"{p}: the video has no frames")
    finally:
        gen.close()


def _open_reader(p: Path) -> Any:
    try:
        return imageio_ffmpeg.read_frames(str(p), pix_fmt="rgb24")
    except (RuntimeError, OSError) as exc:  # pragma: no cover - raised lazily in practice
        raise MediaError(f"{p} is not a readable video ({_first_line(exc)})") from exc


def _read_meta(p: Path) -> dict[str, Any]:
    gen = _open_reader(p)
    try:
        meta: dict[str, Any] = next(gen)
    except (RuntimeError, OSError, StopIteration) as exc:
        raise MediaError(f"{p} is not a readable video ({_first_line(exc)})") from exc
    finally:
        gen.close()
    if "size" not in meta:
        raise MediaError(f"{p} has no video stream")
    return meta


def _existing_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"video {p} does not exist")
    if not p.is_file():
        raise MediaError(f"{p} is not a file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p} is empty")
    return p


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if any("does not contain any stream" in ln for ln in lines):
        return "it has no video stream"
    interesting = [ln for ln in lines if "Invalid data" in ln or "moov atom" in ln]
    text = (interesting or lines or [exc.__class__.__name__])[0]
    return re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", text)[:200]


def even_size(width: int, height: int) -> tuple[int, int]:
    """The nearest size not smaller than ``(width, height)`` that yuv420p can encode."""
    return width + (width % 2), height + (height % 2)


class VideoWriter:
    """Encode RGB uint8 frames to an H.264 (yuv420p) mp4, atomically.

    Use as a context manager; frames are padded (edge pixels repeated) to even sizes, which
    yuv420p requires.  When ``audio_from`` names a file with an audio track, that track is muxed
    in (cut to the video's length).  The output appears at ``path`` only when the ``with`` block
    ends without an exception.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        *,
        audio_from: str | os.PathLike[str] | None = None,
        quality: float = 8.0,
        overwrite: bool = True,
    ) -> None:
        if not np.isfinite(fps) or fps <= 0:
            raise MediaError(f"frame rate must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        self.overwrite = overwrite
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._encoder: Any = None
        self._atomic: Any = None
        self._tmp: Path | None = None

    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_output(self.path, overwrite=self.overwrite)
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 ``[H, W, 3]`` frame; all frames must share one size."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise MediaError(
                f"{self.path}: frames must be RGB uint8 [H, W, 3], got "
                f"{frame.dtype} {list(frame.shape)}"
            )
        h, w = frame.shape[:2]
        if self._encoder is None:
            self._start((w, h))
        if (w, h) != self._size:
            first_w, first_h = self._size or (0, 0)
            raise MediaError(
                f"{self.path}: frame {self.frames_written} is {w}x{h}, "
                f"earlier frames were {first_w}x{first_h}"
            )
        ew, eh = even_size(w, h)
        if (ew, eh) != (w, h):
            frame = np.pad(frame, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        self._encoder.send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def _start(self, size: tuple[int, int]) -> None:
        assert self._tmp is not None, "use VideoWriter as a context manager"
        self._size = size
        self._encoder = imageio_ffmpeg.write_frames(
            str(self._tmp),
            even_size(*size),
            fps=self.fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=self.quality,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"],
        )
        self._encoder.send(None)  # prime the generator: starts ffmpeg

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        encoder, self._encoder = self._encoder, None
        try:
            if encoder is not None:
                encoder.close()
            if exc_type is None and self.frames_written == 0:
                raise MediaError(f"{self.path}: no frames to write")
            if exc_type is None and self.audio_from is not None:
                self._mux_audio()
        except BaseException as err:
            self._atomic.__exit__(type(err), err, err.__traceback__)
            if exc_type is None:
                raise
            return
        self._atomic.__exit__(exc_type, exc, tb)

    def _mux_audio(self) -> None:
        """Add the audio track of ``audio_from``, cut to the video's exact length.

        A second, stream-copy pass rather than muxing while encoding: ffmpeg's ``-shortest``
        drops the last video frame when the audio ends a hair early, and without it a longer
        audio track would extend the video.
        """
        assert self.audio_from is not None and self._tmp is not None
        if not probe_has_audio(self.audio_from):
            return
        muxed = self._tmp.with_name(self._tmp.stem + ".mux.mp4")
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y",
            "-i", str(self._tmp), "-i", str(self.audio_from),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
            "-t", f"{self.frames_written / self.fps:.6f}", "-movflags", "+faststart", str(muxed),
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise MediaError(
                    f"{self.path}: adding the audio of {self.audio_from} failed "
                    f"({_first_line(RuntimeError(proc.stderr))})"
                )
            os.replace(muxed, self._tmp)
        finally:
            muxed.unlink(missing_ok=True)


def probe_has_audio(path: str | os.PathLike[str]) -> bool:
    """Whether a media file (video or audio-only) has an audio stream; false if unreadable.

    Asks ffmpeg for the stream list rather than opening a video reader, so audio-only files
    (``.wav``, ``.m4a``) count too.
    """
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"Stream #\S+.*: Audio:", proc.stderr) is not None


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    audio_from: str | os.PathLike[str] | None = None,
    overwrite: bool = True,
) -> Path:
    """Encode an iterable of frames to ``path`` (see :class:`VideoWriter`); returns the path."""
    with VideoWriter(path, fps, audio_from=audio_from, overwrite=overwrite) as writer:
        writer.write_all(frames)
    return Path(path)
