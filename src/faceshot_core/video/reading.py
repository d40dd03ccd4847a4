"""Reading videos: probing headers, streaming frames one at a time, telling stills apart.

Through the ffmpeg binary that ``imageio-ffmpeg`` ships, so a fresh machine needs no system
ffmpeg.  Reading never holds more than one frame; every failure is one :class:`MediaError`
line naming the file.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np

from faceshot_core.errors import MediaError, StillImageError


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

    Raises :class:`MediaError` for a missing, unreadable or zero-frame file, and
    :class:`StillImageError` for a still image: ffmpeg happily reads a PNG or JPEG (whatever its
    suffix) as a one-frame video, which would silently become a one-frame animation.  The only
    videos faceshot reads are driving videos, so the message says what to give instead.
    """
    p = _existing_file(path)
    meta = _read_meta(p)
    try:
        frame_count, _ = imageio_ffmpeg.count_frames_and_secs(str(p))
    except (RuntimeError, OSError) as exc:
        raise MediaError(f"{p}: cannot count video frames ({first_line(exc)})") from exc
    if frame_count <= 0:
        raise MediaError(f"{p}: the video has no frames")
    if frame_count == 1 and (kind := still_image_format(p)) is not None:
        raise StillImageError(
            f"{p} is a still image ({kind}), not a video; faceshot needs a driving video "
            "(or landmarks saved by `faceshot detect`)"
        )
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
            raise MediaError(f"{p} is not a readable video ({first_line(exc)})") from exc
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
                    f"{p}: video decoding failed after {count} frames ({first_line(exc)})"
                ) from exc
            count += 1
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
        if count == 0:
            raise MediaError(f"{p}: the video has no frames")
    finally:
        gen.close()


def still_image_format(path: str | os.PathLike[str]) -> str | None:
    """The image format (``"PNG"``, ``"JPEG"`` ...) when ``path`` is a single still image.

    Judged by content, not by suffix (a PNG renamed ``.mp4`` is still a PNG); animated images
    (GIF, APNG, WebP with several frames) and MPEG streams, which Pillow also recognises, are
    not still images.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            kind = img.format
            frames = int(getattr(img, "n_frames", 1))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    if not kind or kind == "MPEG" or frames != 1:
        return None
    return str(kind)


def _open_reader(p: Path) -> Any:
    try:
        return imageio_ffmpeg.read_frames(str(p), pix_fmt="rgb24")
    except (RuntimeError, OSError) as exc:  # pragma: no cover - raised lazily in practice
        raise MediaError(f"{p} is not a readable video ({first_line(exc)})") from exc


def _read_meta(p: Path) -> dict[str, Any]:
    gen = _open_reader(p)
    try:
        meta: dict[str, Any] = next(gen)
    except (RuntimeError, OSError, StopIteration) as exc:
        raise MediaError(f"{p} is not a readable video ({first_line(exc)})") from exc
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


def first_line(exc: BaseException) -> str:
    """The one line of an ffmpeg error worth showing a user (addresses and noise removed)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if any("does not contain any stream" in ln for ln in lines):
        return "it has no video stream"
    interesting = [ln for ln in lines if "Invalid data" in ln or "moov atom" in ln]
    text = (interesting or lines or [exc.__class__.__name__])[0]
    return re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", text)[:200]


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
