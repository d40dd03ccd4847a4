"""``faceshot retarget``: the character's landmarks following the driving motion."""

from __future__ import annotations

from pathlib import Path

import click

from faceshot.cli.options import (
    detector_option,
    face_option,
    head_motion_option,
    head_translation_option,
    image_size_option,
    input_file,
    motion_option,
    output_file,
    overwrite_option,
    parse_face,
    parse_motion,
    parse_parts,
    parse_size,
    parts_option,
    quiet_option,
    smooth_option,
)
from faceshot.cli.progress import progress_display, say
from faceshot.pipeline import load_driving
from faceshot.pipeline import retarget as retarget_landmarks
from faceshot_core.atomic import check_output_path
from faceshot_core.images import load_image
from faceshot_core.landmark_files import load_face, save_landmarks
from faceshot_core.landmarks import DEFAULT_FPS
from faceshot_core.render import overlay_on_still
from faceshot_core.video import probe_has_audio, write_video


@click.command()
@click.option(
    "--reference-landmarks",
    "-l",
    type=input_file(),
    required=True,
    help="The character's 68 landmarks: faceshot JSON, .npz/.npy, iBUG .pts or .txt.",
)
@click.option(
    "--driving",
    "-d",
    type=input_file(),
    required=True,
    help="A driving video, or landmarks saved by `faceshot detect` (.npz/.json).",
)
@click.option(
    "-o",
    "--output",
    type=output_file(),
    required=True,
    help="Where to save the reposed sequence [M, 68, 2]: .npz or .json.",
)
@click.option(
    "--overlay-on",
    nargs=2,
    type=(input_file(), output_file()),
    default=None,
    metavar="IMAGE OUT.mp4",
    help="Also draw the reposed landmarks on the reference IMAGE, as a video.",
)
@parts_option
@motion_option
@head_motion_option
@head_translation_option
@image_size_option
@smooth_option
@face_option
@detector_option
@overwrite_option
@quiet_option
def retarget(
    reference_landmarks: Path,
    driving: Path,
    output: Path,
    overlay_on: tuple[Path, Path] | None,
    parts: str | None,
    motion: str | None,
    head_motion: float,
    head_translation: str,
    image_size: str | None,
    smooth: bool,
    face: str,
    detector: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Move the character's landmarks with the motion of a driving face.

    Frame 0 of the driving face is taken as its neutral pose; frame 0 of the output is the
    character's landmarks unchanged.  Head motion (from the jaw line) moves the whole face;
    each part (eyes, brows, nose, mouth, jaw) then moves within it, scaled to the character's
    proportions, so a blink or an open mouth carries over to faces of any shape.  Every frame
    is a valid face: lips never cross, lids never invert, the chin stays below the mouth.
    """
    part_list = parse_parts(parts)
    strengths = parse_motion(motion)
    face_choice = parse_face(face)
    size = parse_size(image_size)
    check_output_path(output, overwrite=overwrite)
    if overlay_on is not None:
        check_output_path(overlay_on[1], overwrite=overwrite)
    image = None
    if overlay_on is not None:
        image = load_image(overlay_on[0])
        size = (image.shape[1], image.shape[0])
    # With an image, its size is the truth: a landmark file made for another size is refused.
    reference = load_face(reference_landmarks, image_size=size)
    with progress_display(quiet=quiet) as progress:
        driving_motion = load_driving(
            driving,
            detector=detector,
            smoothing="one_euro" if smooth else None,
            face=face_choice,
            progress=progress,
        )
    sequence = retarget_landmarks(
        reference,
        driving_motion,
        parts=part_list,
        head_translation=head_translation,
        head_motion=head_motion,
        strength=strengths,
    )
    save_landmarks(output, sequence, overwrite=overwrite)
    say(f"{len(sequence)} reposed frames -> {output}", quiet=quiet)
    if overlay_on is not None and image is not None:
        fps = sequence.fps or DEFAULT_FPS
        audio = driving if probe_has_audio(driving) else None
        write_video(
            overlay_on[1],
            overlay_on_still(image, sequence.points),
            fps,
            audio_from=audio,
            overwrite=overwrite,
        )
        say(f"overlay -> {overlay_on[1]}", quiet=quiet)
