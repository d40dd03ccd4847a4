"""The driving panel and the run: a clip's detected landmarks previewed, then ``faceshot.run``.

The web app runs exactly what ``faceshot run`` runs (:func:`faceshot.run`), with the character's
points from the editor as ``reference_landmarks`` and the driving detection cached in the app's
folder, so the detection the preview did is not done again by the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceshot.demo_clip import write_driving_clip
from faceshot.pipeline import load_driving
from faceshot.runner import RunResult, run
from faceshot.settings import RunSettings
from faceshot.ui.workspace import GpuQueue, UploadLimits, check_upload, named_as_uploaded
from faceshot_backends.loading import resolve_runtime
from faceshot_backends.registry import get_backend
from faceshot_core.detection.choice import FaceChoice
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import DEFAULT_FPS, LandmarkSequence
from faceshot_core.progress import ProgressSink
from faceshot_core.render import overlay_frames
from faceshot_core.video import iter_frames, probe_video, write_video

DEMO_CLIP = "demo_driving.mp4"
DEMO_FRAMES = 48
BETTER = {"lower is better": "lower", "higher is better": "higher"}
_demo_lock = threading.Lock()


@dataclass(frozen=True)
class DrivingPreview:
    """A driving clip, its detected landmarks drawn on it, and a line that sums it up."""

    video: Path
    overlay: Path
    summary: str


def demo_clip(shared: Path) -> Path:
    """The bundled driving clip, made once per app (the astronaut, 2 s at 24 fps)."""
    path = shared / DEMO_CLIP
    with _demo_lock:
        if not path.is_file():
            write_driving_clip(path, DEMO_FRAMES)
    return path


def driving_upload(upload: str | None, limits: UploadLimits) -> Path:
    """An uploaded driving video, checked by kind and size, then by reading its header."""
    path = check_upload(upload, "video", limits)
    with named_as_uploaded(path):
        probe_video(path)
    return path


def preview_driving(
    video: Path,
    folder: Path,
    *,
    cache_dir: Path,
    detector: str = "dlib",
    smoothing: str | None = "one_euro",
    face: FaceChoice = "auto",
    progress: ProgressSink | None = None,
) -> DrivingPreview:
    """Detect the driving landmarks (cached for the run) and draw them on the clip."""
    sequence = load_driving(video, detector=detector, smoothing=smoothing, face=face,
                            cache_dir=cache_dir, progress=progress)  # fmt: skip
    overlay = folder / "driving_landmarks.mp4"
    frames = overlay_frames(iter_frames(video), sequence.points, flags=sequence.flags)
    write_video(overlay, frames, sequence.fps or DEFAULT_FPS)
    return DrivingPreview(video, overlay, _summary(sequence))


def _summary(sequence: LandmarkSequence) -> str:
    lost = int(sequence.flags.sum()) if sequence.flags is not None else 0
    fps = sequence.fps or DEFAULT_FPS
    text = f"{len(sequence)} frames at {fps:g} fps ({len(sequence) / fps:.1f} s); "
    if lost:
        return text + f"no face found in {lost} frames (drawn grey: filled in from neighbours)"
    return text + "a face found in every frame"


def backend_device(backend: str, device: str) -> str:
    """The device a run of ``backend`` would use (decides whether it waits for the GPU)."""
    return resolve_runtime(get_backend(backend), device=device, dtype="auto").device


def run_job(
    character: Path,
    landmarks: Path,
    driving: Path,
    folder: Path,
    *,
    settings: RunSettings,
    options: Mapping[str, Any],
    gpu: GpuQueue,
    progress: ProgressSink | None = None,
    waiting: Callable[[int], None] | None = None,
    name: str | None = None,
) -> RunResult:
    """One ``faceshot.run`` into ``folder`` as ``<name>.mp4``; GPU runs wait in ``gpu``."""
    output = folder / f"{name or character.stem}.mp4"
    if backend_device(settings.backend, settings.device) == "cpu":
        return _run(character, driving, output, landmarks, settings, options, progress)
    with gpu.turn(on_wait=waiting):
        return _run(character, driving, output, landmarks, settings, options, progress)


def _run(
    character: Path,
    driving: Path,
    output: Path,
    landmarks: Path,
    settings: RunSettings,
    options: Mapping[str, Any],
    progress: ProgressSink | None,
) -> RunResult:
    cfg = settings.model_copy(update={"reference_landmarks": landmarks, "compare": True,
                                      "overwrite": True})  # fmt: skip
    return run(character, driving, output=output, options=options, settings=cfg,
               progress=progress)  # fmt: skip


def measure(result: RunResult, reference: Path, folder: Path) -> str:
    """``faceshot eval`` of a run as a Markdown table (the page shows it under the videos).

    The driving landmarks the run used are saved next to the result, so nothing is detected
    twice; what cannot be measured (no face found on a cartoon, no CLIP encoder on disk) keeps
    its row, with the reason.
    """
    from faceshot.evaluation import evaluate

    driving = save_landmarks(folder / "driving_landmarks.npz", result.driving)
    report = evaluate(result.output, result.landmarks_file, driving=driving, reference=reference)
    lines = ["| figure | value | unit | better |", "|---|---|---|---|"]
    notes = []
    for figure in report.figures:
        shown = figure.shown()
        if figure.not_measured:
            notes.append(f"{figure.label}: {figure.not_measured}")
            shown = f"not measured ({len(notes)})"
        better = BETTER.get(figure.direction, "")
        lines.append(f"| {figure.label} | {shown} | {figure.unit} | {better} |")
    lines += [""] + [f"- ({n}) {note}" for n, note in enumerate(notes, 1)]
    return "\n".join(lines)
