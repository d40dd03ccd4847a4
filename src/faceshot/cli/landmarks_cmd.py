"""``faceshot landmarks``: reference landmarks of a still image, and format conversion."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import numpy as np

from faceshot.cli.match_options import model_options, settings_from
from faceshot.cli.options import (
    detector_option,
    image_size_option,
    input_file,
    output_file,
    overwrite_option,
    parse_size,
    quiet_option,
)
from faceshot.cli.progress import say
from faceshot.matching_api import match_landmarks, match_with_targets
from faceshot.pipeline import detect_reference
from faceshot_core.atomic import check_output_path
from faceshot_core.errors import NoFaceError
from faceshot_core.images import load_image, save_image
from faceshot_core.landmark_files import load_landmarks, save_landmarks
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.render import draw_landmarks

landmark_output_option = click.option(
    "-o",
    "--output",
    type=output_file(),
    required=True,
    help="Landmark file to write (.json, .npz, .npy, .pts or .txt).",
)


def _check_outputs(output: Path, overlay: Path | None, overwrite: bool) -> None:
    for path in (output, overlay):
        if path is not None:
            check_output_path(path, overwrite=overwrite)


def _write_face(
    face: FaceLandmarks,
    pixels: np.ndarray,
    output: Path,
    overlay: Path | None,
    *,
    overwrite: bool,
    quiet: bool,
    detail: str = "",
) -> None:
    """Save one face's landmarks (and the image with them drawn on it, when asked)."""
    save_landmarks(output, face, overwrite=overwrite)
    say(f"68 landmarks -> {output}{detail}", quiet=quiet)
    if overlay is not None:
        save_image(overlay, draw_landmarks(pixels, face.points), overwrite=overwrite)
        say(f"overlay -> {overlay}", quiet=quiet)


@click.group()
def landmarks() -> None:
    """Reference landmarks: detect or match them on an image, convert, show."""


@landmarks.command("detect")
@click.argument("image", type=input_file())
@landmark_output_option
@click.option(
    "--overlay",
    type=output_file(),
    default=None,
    help="Also write the image with the landmarks drawn on it.",
)
@detector_option
@overwrite_option
@quiet_option
def detect_landmarks(
    image: Path, output: Path, overlay: Path | None, detector: str, overwrite: bool, quiet: bool
) -> None:
    """Detect the 68 landmarks of the largest face in IMAGE (human-like faces).

    For a face no detector finds (animals, toys, anime), use `faceshot landmarks match`, or place
    the 68 points by hand in a landmark file (see docs/landmark-format.md).
    """
    _check_outputs(output, overlay, overwrite)
    pixels = load_image(image)
    try:
        face = detect_reference(pixels, detector=detector, source=str(image))
    except NoFaceError:
        # the pipeline's message points at `run --reference-landmarks`, which this command lacks
        match_cmd = (
            f"faceshot landmarks match {shlex.quote(str(image))} -o {shlex.quote(str(output))}"
        )
        raise NoFaceError(
            f"{image}: no face found by the {detector} detector; for a face no detector finds "
            f"(animals, toys, anime), match the landmarks with `{match_cmd} --gallery DIR`, or "
            "place the 68 points by hand in a landmark file (see docs/landmark-format.md)"
        ) from None
    _write_face(face, pixels, output, overlay, overwrite=overwrite, quiet=quiet)


@landmarks.command("convert")
@click.argument("source", type=input_file())
@click.argument("target", type=output_file())
@image_size_option
@overwrite_option
def convert(source: Path, target: Path, image_size: str | None, overwrite: bool) -> None:
    """Convert a landmark file between formats (chosen by the suffixes)."""
    check_output_path(target, overwrite=overwrite)
    save_landmarks(
        target, load_landmarks(source, image_size=parse_size(image_size)), overwrite=overwrite
    )


@landmarks.command("show")
@click.argument("source", type=input_file())
@image_size_option
def show(source: Path, image_size: str | None) -> None:
    """Print what a landmark file holds (validating it on the way)."""
    lms = load_landmarks(source, image_size=parse_size(image_size))
    w, h = lms.image_size
    if isinstance(lms, FaceLandmarks):
        x0, y0, x1, y1 = lms.bbox()
        click.echo(
            f"{source}: one face in a {w}x{h} image, box ({x0:.1f}, {y0:.1f})-({x1:.1f}, {y1:.1f})"
        )
        return
    fps = f"{lms.fps:g} fps" if lms.fps else "fps unknown"
    click.echo(
        f"{source}: {len(lms)} frames of a {w}x{h} video, {fps}, "
        f"{int(lms.flags.sum())} interpolated"
    )


@landmarks.command("match")
@click.argument("image", type=input_file())
@landmark_output_option
@click.option(
    "--gallery",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Appearance gallery (default: $FACESHOT_GALLERY).",
)
@click.option(
    "--overlay",
    type=output_file(),
    default=None,
    help="Also write the image with the matched landmarks drawn on it.",
)
@click.option(
    "--targets",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Instead of a gallery: a folder of annotated target images (image + 68-point file), "
    "matched as in the paper with IP-Adapter cross-prompting (Eq. 3).",
)
@click.option(
    "--respace",
    is_flag=True,
    help="Re-space runs evenly along fitted curves (the reference code's clean-up).",
)
@click.option(
    "--first-pass",
    type=click.Choice(["average", "best"]),
    default="average",
    show_default=True,
    help="First match for cropping the parts: features averaged over all domains, "
    "or each point's best domain.",
)
@model_options
@overwrite_option
@quiet_option
def match(
    image: Path,
    output: Path,
    gallery: Path | None,
    overlay: Path | None,
    targets: Path | None,
    respace: bool,
    first_pass: str,
    overwrite: bool,
    quiet: bool,
    **model: Any,
) -> None:
    """Find the 68 landmarks of any character in IMAGE (FaceShot's appearance-guided matching).

    Diffusion features of the image are compared with the gallery's features of each facial
    part, taken from the domain (human, anime, animal, ...) whose look is closest to the
    character's part.  Needs the Stable Diffusion (and IP-Adapter) weights locally.
    """
    _check_outputs(output, overlay, overwrite)
    if gallery is not None and targets is not None:
        raise click.UsageError("give --gallery or --targets, not both")
    settings = settings_from(gallery, respace=respace, first_pass=first_pass, **model)
    pixels = load_image(image)
    if targets is not None:
        matched = match_with_targets(pixels, targets, settings)
        found, scores, how = matched.landmarks, matched.scores, f"{targets}"
    else:
        result = match_landmarks(pixels, settings)
        found, scores = result.landmarks, result.scores
        how = "domains " + ", ".join(f"{p}: {d}" for p, d in result.domains.items())
    face = FaceLandmarks(found.points, found.image_size, source=str(image))
    detail = f" ({how}; mean similarity {float(np.mean(scores)):.3f})"
    _write_face(face, pixels, output, overlay, overwrite=overwrite, quiet=quiet, detail=detail)
