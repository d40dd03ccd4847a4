"""``faceshot run`` and ``faceshot backends``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import click
from rich.console import Console
from rich.table import Table

from faceshot.cli.match_options import settings_from, weights_options
from faceshot.cli.options import (
    detector_option,
    input_file,
    output_file,
    overwrite_option,
    parse_parts,
    parts_option,
    quiet_option,
    smooth_option,
)
from faceshot.cli.progress import ProgressEvent, progress_display, say
from faceshot.runner import run as run_pipeline
from faceshot_core.plugins import backend_registry


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
@click.option("--device", default="cpu", show_default=True, help="Device for GPU backends.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]),
              default="float32", show_default=True, help="Precision for GPU backends.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed for generative backends.")  # fmt: skip
@click.option("--option", "backend_options", multiple=True, metavar="KEY=VALUE",
              help="A backend option (repeatable); `faceshot backends -v` lists them.")  # fmt: skip
@click.option("--max-frames", type=click.IntRange(1), default=None,
              help="Animate only the first N driving frames.")  # fmt: skip
@smooth_option
@parts_option
@detector_option
@overwrite_option
@quiet_option
def run(
    reference: Path, driving: Path, output: Path, backend: str,
    reference_landmarks: Path | None, compare: bool, overlay: bool, device: str, dtype: str,
    seed: int, backend_options: tuple[str, ...], max_frames: int | None, smooth: bool,
    parts: str | None, detector: str, overwrite: bool, quiet: bool, match: bool,
    gallery: Path | None, **weights: Any,
) -> None:  # fmt: skip
    """Animate a character image with the motion of a driving video.

    The output is an mp4 at the driving video's frame rate, with its audio.  The character's
    landmarks come from --reference-landmarks, else from a face detector (human-like faces),
    else from the appearance-guided matcher (--gallery; --match to use it first).
    """
    options = parse_backend_options(backend_options)
    with progress_display(quiet=quiet) as display:
        result = run_pipeline(
            reference, driving, output=output, backend=backend,
            reference_landmarks=reference_landmarks, compare=compare, overlay=overlay,
            match=match,
            matching=replace(settings_from(gallery, **weights), device=device, dtype=dtype),
            device=device, dtype=dtype, seed=seed, detector=detector,
            smoothing="one_euro" if smooth else None, parts=parse_parts(parts),
            max_frames=max_frames, overwrite=overwrite,
            progress=lambda stage, done, total: display(ProgressEvent(stage, done, total)),
            options=options,
        )  # fmt: skip
    extra = [p for p in (result.compare, result.overlay) if p is not None]
    say(f"{result.frames} frames at {result.fps:g} fps with {result.backend} -> {result.output} "
        f"({result.timings['total']:.1f} s); landmarks -> {result.landmarks_file}"
        + "".join(f"; {p}" for p in extra), quiet=quiet)  # fmt: skip


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + "|".join(str(a) for a in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Also list each backend's options.")
def backends(verbose: bool) -> None:
    """List the installed backends: plugin, version, and whether each is ready here."""
    registry = backend_registry()
    table = Table(show_lines=False)
    for column in ("backend", "plugin", "version", "status", "description"):
        table.add_column(column)
    for entry in registry:
        ready = entry.cls().check().summary()
        table.add_row(entry.name, entry.plugin.name, entry.plugin.version or "-", ready,
                      getattr(entry.cls, "description", ""))  # fmt: skip
    for name, entries in registry.conflicts.items():
        owners = " and ".join(e.plugin.name for e in entries)
        table.add_row(name, owners, "-", "conflict: registered twice", "")
    console = Console()
    console.print(table)
    for plugin in registry.failed_plugins:
        console.print(f"[red]plugin {plugin.name} failed:[/red] {plugin.error}", markup=True,
                      highlight=False)  # fmt: skip
    if verbose:
        for entry in registry:
            console.print(f"\n[bold]{entry.name}[/bold] options:")
            fields = entry.cls.Options.model_fields
            if not fields:
                console.print("  (none)")
            for name, info in fields.items():
                kind = _type_name(info.annotation)
                console.print(f"  {name} ({kind}, default {info.default!r})"
                              + (f": {info.description}" if info.description else ""))  # fmt: skip
