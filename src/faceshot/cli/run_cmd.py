"""``faceshot run``: the whole pipeline in one command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from faceshot.cli.match_options import settings_from, weights_options
from faceshot.cli.options import (
    detector_option,
    face_option,
    head_motion_option,
    head_translation_option,
    input_file,
    motion_option,
    output_file,
    overwrite_option,
    parse_face,
    parse_motion,
    parse_parts,
    parts_option,
    quiet_option,
    smooth_option,
)
from faceshot.cli.progress import progress_display, say
from faceshot.runner import run as run_pipeline


def parse_backend_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("steps=25", "style=pose")`` -> ``{"steps": 25, "style": "pose"}``.

    Values are read as JSON when they parse (numbers, true/false, lists), else kept as text;
    the backend's own options model then validates them.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


@click.command()
@click.option("-r", "--reference", type=input_file(), required=True,
              help="The character image to animate.")  # fmt: skip
@click.option("-d", "--driving", type=input_file(), required=True,
              help="Driving video, or its landmarks saved by `faceshot detect`.")  # fmt: skip
@click.option("-o", "--output", type=output_file(), required=True,
              help="The animated video (.mp4); the reposed landmarks go to "
              "<name>_landmarks.npz.")  # fmt: skip
@click.option("-b", "--backend", default="warp", show_default=True,
              help="Animator; `faceshot backends` lists what is installed and ready.")  # fmt: skip
@click.option("-l", "--reference-landmarks", type=input_file(), default=None,
              help="The character's 68 landmarks (JSON, .npz/.npy, .pts, .txt). Without it, "
              "a face detector is tried on the reference.")  # fmt: skip
@click.option(
    "--match",
    is_flag=True,
    help="Find the character's landmarks with the appearance-guided matcher even if "
    "a face detector would find a face.",
)
@click.option(
    "--gallery",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Appearance gallery for the matcher (default: $FACESHOT_GALLERY); with it, "
    "the matcher also steps in when no face is detected.",
)
@weights_options
@click.option("--compare", is_flag=True,
              help="Also write <name>_compare.mp4 (driving | reference | result).")  # fmt: skip
@click.option("--overlay", is_flag=True,
              help="Also write <name>_overlay.mp4 (result with landmarks).")  # fmt: skip
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present and the backend supports it), cpu, cuda, "
              "cuda:N.")  # fmt: skip
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
              default="auto", show_default=True,
              help="Precision: auto is float16 on CUDA (when supported), float32 on "
              "CPU.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed for generative backends.")  # fmt: skip
@click.option("--option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="A backend option (repeatable); `faceshot backends -v` lists them.")  # fmt: skip
@click.option("--max-frames", type=click.IntRange(1), default=None,
              help="Animate only the first N driving frames.")  # fmt: skip
@smooth_option
@face_option
@parts_option
@motion_option
@head_motion_option
@head_translation_option
@detector_option
@overwrite_option
@quiet_option
def run(
    reference: Path, driving: Path, output: Path, backend: str,
    reference_landmarks: Path | None, compare: bool, overlay: bool, device: str, dtype: str,
    seed: int, backend_options: tuple[str, ...], max_frames: int | None, smooth: bool,
    face: str, parts: str | None, motion: str | None, head_motion: float,
    head_translation: str, detector: str, overwrite: bool, quiet: bool,
    match: bool,
    gallery: Path | None, **weights: Any,
) -> None:  # fmt: skip
    """Animate a character image with the motion of a driving video.

    The output is an mp4 at the driving video's frame rate, with its audio.  The character's
    landmarks come from --reference-landmarks, else from a face detector (human-like faces),
    else from the appearance-guided matcher (--gallery; --match to use it first).
    """
    options = parse_backend_options(backend_options)
    part_list = parse_parts(parts)
    strengths = parse_motion(motion)
    face_choice = parse_face(face)
    with progress_display(quiet=quiet) as progress:
        result = run_pipeline(
            reference, driving, output=output, options=options, progress=progress,
            backend=backend, reference_landmarks=reference_landmarks, compare=compare,
            overlay=overlay, match=match,
            matching=replace(settings_from(gallery, **weights),
                             device=None if device == "auto" else device,
                             dtype=None if dtype == "auto" else dtype),
            device=device, dtype=dtype, seed=seed, detector=detector,
            smoothing="one_euro" if smooth else None, face=face_choice,
            parts=tuple(part_list) if part_list is not None else None, motion=strengths,
            head_motion=head_motion,
            head_translation=head_translation, max_frames=max_frames, overwrite=overwrite,
        )  # fmt: skip
    extra = [p for p in (result.compare, result.overlay) if p is not None]
    say(f"{result.frames} frames at {result.fps:g} fps with {result.backend} on {result.device} "
        f"({result.dtype}) -> {result.output} ({result.timings['total']:.1f} s); landmarks -> "
        f"{result.landmarks_file}" + "".join(f"; {p}" for p in extra), quiet=quiet)  # fmt: skip
