"""Pipeline step 4: a loaded backend renders the reposed sequence into video files.

The runner's side of the backend contract lives here: the reference image and every landmark
are mapped into the backend's working size (:mod:`faceshot_backends.framing`), the backend's
frames are checked (count, size, dtype) and mapped back to the output size, and they stream
into the main video and, on request, a side-by-side comparison and a landmark overlay, all in
one pass.  A clip backend's frame limit is enforced before anything runs; a windowed backend
gets any length.  A failure inside the backend becomes one :class:`BackendRunError` line, and,
as for any failure, no output file is left behind (the writers are atomic).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceshot_backends.framing import FrameMapping, working_request, working_size_of
from faceshot_backends.options import BackendOptionError
from faceshot_backends.request import Runtime
from faceshot_core.errors import FaceshotError, FaceshotUserError
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.progress import ProgressSink, StageReporter
from faceshot_core.render import draw_landmarks, pose_image
from faceshot_core.video import VideoWriter, iter_frames


class BackendRunError(FaceshotError):
    """The backend failed while animating, or broke the contract (its bug, not the user's)."""


@dataclass(frozen=True)
class OutputPaths:
    """Every file a run writes, derived from the main output's name."""

    video: Path
    landmarks: Path
    compare: Path | None = None
    overlay: Path | None = None

    @classmethod
    def for_output(
        cls, output: str | os.PathLike[str], *, compare: bool, overlay: bool
    ) -> OutputPaths:
        out = Path(output)
        if out.suffix.lower() != ".mp4":
            raise BackendOptionError(f"output {out} must be an .mp4 file")
        stem = out.with_suffix("")
        return cls(
            video=out,
            landmarks=Path(f"{stem}_landmarks.npz"),
            compare=Path(f"{stem}_compare.mp4") if compare else None,
            overlay=Path(f"{stem}_overlay.mp4") if overlay else None,
        )

    def all(self) -> list[Path]:
        return [p for p in (self.video, self.landmarks, self.compare, self.overlay) if p]


def check_frame_limits(backend_cls: Any, frames: int) -> None:
    """Refuse what the backend cannot take, before anything loads or runs."""
    caps = backend_cls.capabilities
    if frames < caps.min_frames:
        raise BackendOptionError(f"backend {backend_cls.name!r} needs at least "
                                 f"{caps.min_frames} frames; the driving has {frames}")  # fmt: skip
    limit = caps.frame_limit()
    if limit is not None and frames > limit:
        raise BackendOptionError(
            f"backend {backend_cls.name!r} generates at most {limit} frames at once and the "
            f"driving has {frames}; use max_frames={limit} (--max-frames) to animate the first "
            "part"
        )


def _panel(frame: np.ndarray, height: int) -> np.ndarray:
    h, w = frame.shape[:2]
    width = max(2, round(w * height / h / 2) * 2)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _driving_frames(video: Path | None, driving: LandmarkSequence) -> Iterator[np.ndarray]:
    """The driving video's frames, or its landmarks drawn as pose images when there is none."""
    done = 0
    if video is not None:
        for frame in iter_frames(video):
            yield frame
            done += 1
    for points in driving.points[done:]:  # also a video that decodes fewer frames than declared
        yield pose_image(points, driving.image_size)


def _checked(frames: Any, backend: str, count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The backend's frames, each checked; a contract breach or a crash is one clear error."""
    w, h = size
    produced = 0
    try:
        for frame in frames:
            arr = np.asarray(frame)
            if arr.dtype != np.uint8 or arr.shape != (h, w, 3):
                raise BackendRunError(
                    f"backend {backend!r} yielded a {arr.dtype} frame of shape "
                    f"{list(arr.shape)}; expected uint8 [{h}, {w}, 3]"
                )
            produced += 1
            if produced > count:
                break
            yield arr
    except (FaceshotError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise BackendRunError(f"backend {backend!r} failed while animating: "
                              f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
    if produced != count:
        raise BackendRunError(f"backend {backend!r} produced {produced} frames for a sequence of "
                              f"{count}; nothing was written")  # fmt: skip


def animate(
    animator: Any,
    backend_cls: Any,
    image: np.ndarray,
    reference: FaceLandmarks,
    sequence: LandmarkSequence,
    paths: OutputPaths,
    *,
    runtime: Runtime,
    fps: float,
    driving: LandmarkSequence | None = None,
    driving_video: Path | None = None,
    audio: Path | None = None,
    overwrite: bool = False,
    progress: ProgressSink | None = None,
    options: Any = None,
) -> tuple[int, FrameMapping]:
    """Render ``sequence`` with a loaded ``animator`` into ``paths``; frames written, mapping.

    ``options`` are the animator's backend options (they may set the working size); by default
    the animator's own ``options`` attribute.
    """
    if reference.image_size != (image.shape[1], image.shape[0]):
        raise FaceshotUserError(f"the reference landmarks are for a {reference.image_size} image, "
                                f"the image is {image.shape[1]}x{image.shape[0]}")  # fmt: skip
    request, mapping = working_request(
        image, reference.points, sequence.points, fps=fps, runtime=runtime,
        working_size=working_size_of(backend_cls, options or getattr(animator, "options", None)),
        interpolated=sequence.interpolated,
    )  # fmt: skip
    total = request.num_frames
    out_h = mapping.output_size[1]
    frames = _checked(animator.animate(request, progress), backend_cls.name, total, request.size)
    writing = StageReporter(progress, "writing", total)
    with ExitStack() as stack:
        main = stack.enter_context(VideoWriter(paths.video, fps, audio_from=audio,
                                               overwrite=overwrite))  # fmt: skip
        side = (stack.enter_context(VideoWriter(paths.compare, fps, audio_from=audio,
                                                overwrite=overwrite))
                if paths.compare else None)  # fmt: skip
        lms = (stack.enter_context(VideoWriter(paths.overlay, fps, overwrite=overwrite))
               if paths.overlay else None)  # fmt: skip
        drive = _driving_frames(driving_video, driving or sequence) if side else None
        ref_panel = (
            _panel(mapping.frame_to_output(request.reference_image), out_h) if side else None
        )
        for m, working_frame in enumerate(frames):
            frame = mapping.frame_to_output(working_frame)
            main.write(frame)
            if side is not None and drive is not None:
                side.write(np.concatenate([_panel(next(drive), out_h), ref_panel, frame], 1))
            if lms is not None:
                lms.write(draw_landmarks(frame, mapping.points_to_output(sequence.points[m])))
            writing.step()
    return total, mapping
