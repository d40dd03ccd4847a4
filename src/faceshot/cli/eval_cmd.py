"""``faceshot eval``: the figures of one result, as a table and, on request, JSON."""

from __future__ import annotations

from pathlib import Path

import click

from faceshot.cli.options import (
    detector_option,
    input_file,
    output_file,
    overwrite_option,
    quiet_option,
)
from faceshot.cli.progress import progress_display, say
from faceshot.evaluation import TRACKERS, EvalInputError, default_landmarks, evaluate, report_table
from faceshot.matching_api import MatchSettings
from faceshot_core.atomic import atomic_output, check_output_path


@click.command("eval")
@click.argument("result", type=input_file())
@click.option(
    "-l",
    "--landmarks",
    type=input_file(),
    default=None,
    help="The reposed landmarks the result was rendered from (default: RESULT's "
    "<stem>_landmarks.npz, as `faceshot run` saves them).",
)
@click.option(
    "-d",
    "--driving",
    type=input_file(),
    default=None,
    help="The driving video (or its landmarks from `faceshot detect`): for the motion figures.",
)
@click.option(
    "-r",
    "--reference",
    type=input_file(),
    default=None,
    help="The character image: for the identity figures.",
)
@click.option(
    "--tracker",
    type=click.Choice(TRACKERS),
    default="detector",
    show_default=True,
    help="How landmarks are found on the result: the face detector (human-like faces) or the "
    "appearance-guided matcher (any character; needs its weights and --gallery).",
)
@detector_option
@click.option(
    "--gallery",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The matcher's gallery (default: $FACESHOT_GALLERY).",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="With the matcher: track every Nth frame only.",
)
@click.option(
    "--clip",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of a CLIP image encoder for identity (default: $FACESHOT_CLIP_IMAGE_ENCODER, "
    "else h94/IP-Adapter or openai/clip-vit-large-patch14 in the Hugging Face cache).",
)
@click.option(
    "--json", "json_out", type=output_file(), default=None, help="Also write the report as JSON."
)
@overwrite_option
@quiet_option
def eval_(
    result: Path,
    landmarks: Path | None,
    driving: Path | None,
    reference: Path | None,
    tracker: str,
    detector: str,
    gallery: Path | None,
    every: int,
    clip: Path | None,
    json_out: Path | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Measure a RESULT video against the landmarks it was rendered from.

    Point tracking (landmarks found on the result vs the reposed ones: NME, frames without a
    face), anatomy and motion fidelity to the driving face, landmark jitter and background
    flicker, and identity (CLIP similarity to the reference).  Figures that cannot be measured
    say why.  See docs/evaluation.md for what each figure means.
    """
    if landmarks is None:
        landmarks = default_landmarks(result)
        if not landmarks.is_file():
            raise EvalInputError(f"give --landmarks: {landmarks} (the default) does not exist")
    if json_out is not None:
        check_output_path(json_out, overwrite=overwrite)
    with progress_display(quiet=quiet, transient=True) as progress:
        report = evaluate(
            result, landmarks, driving=driving, reference=reference, tracker=tracker,
            detector=detector, clip=clip, matching=MatchSettings(gallery=gallery), every=every,
            progress=progress,
        )  # fmt: skip
    from rich.console import Console

    Console(soft_wrap=False).print(report_table(report))
    if json_out is not None:
        with atomic_output(json_out, overwrite=overwrite) as tmp:
            tmp.write_text(report.to_json() + "\n", encoding="utf-8")
        say(f"report -> {json_out}", quiet=quiet)
