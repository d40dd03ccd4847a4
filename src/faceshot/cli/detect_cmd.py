"""``faceshot detect``: driving-video landmarks, saved for reuse."""

from __future__ import annotations

from pathlib import Path

import click

from faceshot.cli.options import (
    detector_option,
    face_option,
    fan_weights_option,
    input_file,
    output_file,
    overwrite_option,
    parse_face,
    quiet_option,
    smooth_option,
)
from faceshot.cli.progress import progress_display, say
from faceshot.pipeline import load_driving, make_detector
from faceshot_core.atomic import check_output_path
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.render import overlay_frames
from faceshot_core.video import iter_frames, probe_video, write_video


@click.command()
@click.argument("video", type=input_file())
@click.option(
    "-o",
    "--output",
    type=output_file(),
    required=True,
    help="Where to save the landmarks: .npz (compact) or .json.",
)
@click.option(
    "--overlay",
    type=output_file(),
    default=None,
    help="Also write the video with the landmarks drawn on it (mp4, keeps the audio).",
)
@detector_option
@fan_weights_option
@smooth_option
@face_option
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Reuse landmarks of a video already processed with the same settings (keyed by the "
    "video's content); nothing is ever written next to the input.",
)
@overwrite_option
@quiet_option
def detect(
    video: Path,
    output: Path,
    overlay: Path | None,
    detector: str,
    fan_weights: Path | None,
    smooth: bool,
    face: str,
    cache_dir: Path | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Detect 68 face landmarks in every frame of a driving VIDEO.

    The face is tracked from frame to frame (re-detected when lost); frames where no face is
    found are filled from their neighbours and flagged in the saved file.  The saved landmarks
    can be given to `faceshot retarget --driving` instead of the video, like a motion template.
    """
    check_output_path(output, overwrite=overwrite)
    if overlay is not None:
        check_output_path(overlay, overwrite=overwrite)
    info = probe_video(video)
    det = make_detector(detector, **({"weights_dir": fan_weights} if fan_weights else {}))
    with progress_display(quiet=quiet) as progress:
        sequence = load_driving(
            video,
            detector=det,
            smoothing="one_euro" if smooth else None,
            face=parse_face(face),
            cache_dir=cache_dir,
            progress=progress,
        )
    save_landmarks(output, sequence, overwrite=overwrite)
    missing = int(sequence.flags.sum())
    say(
        f"{len(sequence)} frames at {info.fps:g} fps -> {output}"
        + (f" ({missing} without a face, interpolated)" if missing else ""),
        quiet=quiet,
    )
    if overlay is not None:
        frames = overlay_frames(iter_frames(video), sequence.points, flags=sequence.flags)
        write_video(overlay, frames, info.fps, audio_from=video, overwrite=overwrite)
        say(f"overlay -> {overlay}", quiet=quiet)
