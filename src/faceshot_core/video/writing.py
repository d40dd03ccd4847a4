"""Writing videos: H.264 (yuv420p) mp4 from RGB frames, atomically, with optional audio.

The encoder is our own ffmpeg process rather than ``imageio_ffmpeg.write_frames``: that one
prints ffmpeg's messages straight to the terminal and never checks ffmpeg's exit status, so a
full disk showed as raw ffmpeg lines followed by a misleading error from the next step.  Here
ffmpeg's messages are collected, a failed encode raises one clear error (``OutOfSpaceError``
for a full disk), and an aborted write kills ffmpeg instead of waiting for it.  Outputs are
written to a temporary file and renamed when complete (see :mod:`faceshot_core.atomic`), so an
interrupted or failed encode leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections import deque
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import imageio_ffmpeg
import numpy as np

from faceshot_core.atomic import atomic_output, no_space_error
from faceshot_core.errors import MediaError
from faceshot_core.video.reading import first_line, probe_has_audio

#: What ffmpeg says when the disk or the quota is full.
_NO_SPACE = ("No space left on device", "Disk quota exceeded")


def even_size(width: int, height: int) -> tuple[int, int]:
    """The nearest size not smaller than ``(width, height)`` that yuv420p can encode."""
    return width + (width % 2), height + (height % 2)


class _Encoder:
    """One ffmpeg process encoding raw RGB frames from its stdin to H.264 (yuv420p) mp4.

    ffmpeg runs in its own session, so a Ctrl-C or a signal sent to the terminal's process group
    reaches only Python, which then stops ffmpeg itself (see :meth:`abort`).  Its messages are
    kept (the last lines) to explain a failure, never printed.
    """

    def __init__(self, out: Path, size: tuple[int, int], fps: float, quality: float) -> None:
        crf = int((1.0 - quality / 10.0) * 51)  # imageio-ffmpeg's mapping: same output as before
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-nostdin", "-v", "error",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size[0]}x{size[1]}",
            "-pix_fmt", "rgb24", "-r", str(Fraction(fps).limit_denominator()), "-i", "-", "-an",
            "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
            "-movflags", "+faststart", str(out),
        ]  # fmt: skip
        self.log: deque[str] = deque(maxlen=40)
        pipe = subprocess.PIPE
        self._proc = subprocess.Popen(
            cmd, stdin=pipe, stdout=subprocess.DEVNULL, stderr=pipe, start_new_session=True
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self.log.append(line)

    def send(self, frame: np.ndarray) -> bool:
        """Pipe one frame; ``False`` when ffmpeg has stopped reading (it failed)."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame.data)
        except (BrokenPipeError, ValueError):
            return False
        return True

    def finish(self) -> int:
        """Close the input, wait for ffmpeg to write the file; its exit status."""
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        code = self._proc.wait()
        self._reader.join(timeout=5)
        return code

    def abort(self) -> None:
        """Stop ffmpeg at once (the output is being thrown away)."""
        if self._proc.poll() is None:
            self._proc.kill()
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        self._proc.wait()
        self._reader.join(timeout=5)


class VideoWriter:
    """Encode RGB uint8 frames to an H.264 (yuv420p) mp4, atomically.

    Use as a context manager.  yuv420p needs even sizes, so a frame of odd width or height
    gets one more column on the right or row at the bottom, copied from its edge: nothing is
    resampled (a 781 x 500 frame is stored as 782 x 500 with the first 781 columns as given).
    When ``audio_from`` names a file with an audio track, that track is muxed in (cut to the
    video's length).  The output appears at ``path`` only when the ``with`` block ends without
    an exception; on any exception (including ``KeyboardInterrupt``) ffmpeg is killed and the
    temporary file removed.  A full disk raises :class:`~faceshot_core.errors.OutOfSpaceError`.
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
        if not 1 <= quality <= 10:
            raise MediaError(f"quality must be between 1 and 10, got {quality}")
        self.path = Path(path)
        self.fps = float(fps)
        self.quality = quality
        self.overwrite = overwrite
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._encoder: _Encoder | None = None
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
        assert self._encoder is not None
        if (w, h) != self._size:
            first_w, first_h = self._size or (0, 0)
            raise MediaError(
                f"{self.path}: frame {self.frames_written} is {w}x{h}, "
                f"earlier frames were {first_w}x{first_h}"
            )
        ew, eh = even_size(w, h)
        if (ew, eh) != (w, h):
            frame = np.pad(frame, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")
        if not self._encoder.send(np.ascontiguousarray(frame)):
            self._encoder.finish()
            raise self._failure(self._encoder)
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def _start(self, size: tuple[int, int]) -> None:
        assert self._tmp is not None, "use VideoWriter as a context manager"
        self._size = size
        self._encoder = _Encoder(self._tmp, even_size(*size), self.fps, self.quality)

    def _failure(self, encoder: _Encoder) -> MediaError:
        """The one-line error for an encode that ffmpeg gave up on."""
        log = "\n".join(encoder.log) or "ffmpeg stopped without a message"
        if any(marker in log for marker in _NO_SPACE):
            return no_space_error(self.path)
        return MediaError(f"{self.path}: encoding the video failed ({first_line(Exception(log))})")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        encoder, self._encoder = self._encoder, None
        try:
            if encoder is not None:
                if exc_type is not None:
                    encoder.abort()
                elif encoder.finish() != 0:
                    raise self._failure(encoder)
            if exc_type is None and self.frames_written == 0:
                raise MediaError(f"{self.path}: no frames to write")
            if exc_type is None and self.audio_from is not None:
                self._mux_audio()
        except BaseException as err:
            if encoder is not None:
                encoder.abort()  # interrupted while ffmpeg was finishing
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
            proc = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)
            if proc.returncode != 0:
                if any(marker in proc.stderr for marker in _NO_SPACE):
                    raise no_space_error(self.path)
                raise MediaError(
                    f"{self.path}: adding the audio of {self.audio_from} failed "
                    f"({first_line(RuntimeError(proc.stderr))})"
                )
            os.replace(muxed, self._tmp)
        finally:
            muxed.unlink(missing_ok=True)


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
