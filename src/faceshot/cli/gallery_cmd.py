"""``faceshot gallery``: build, import and inspect appearance galleries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from faceshot.cli.match_options import model_options, settings_from
from faceshot.cli.options import overwrite_option, quiet_option
from faceshot.cli.progress import progress_display, say
from faceshot.matching_api import load_models
from faceshot_core.matching.base import FeatureSpec
from faceshot_core.matching.gallery import (
    REFERENCE_CODE_SPEC,
    build_gallery,
    import_reference_gallery,
    load_gallery,
)

REFERENCE_EMBEDDER = "clip-vit-h-14"


@click.group()
def gallery() -> None:
    """Appearance galleries: per part and domain, the features the matcher looks for."""


@gallery.command("build")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Gallery folder to write (gallery.json + gallery.safetensors).",
)
@click.option("--note", default=None, help="Free text stored in the gallery (who, what data).")
@model_options
@overwrite_option
@quiet_option
def build(
    source: Path, output: Path, note: str | None, overwrite: bool, quiet: bool, **model: Any
) -> None:
    """Build a gallery from SOURCE/<domain>/ folders of annotated images.

    Each image needs a 68-point landmark file with the same stem (faceshot JSON, .npz, .npy,
    .pts or .txt), e.g. SOURCE/anime/a1.png + SOURCE/anime/a1.json.  The features come from
    the model given here; the gallery records which, and refuses other models later.
    """
    settings = settings_from(None, **model)
    extractor, embedder = load_models(settings)
    with progress_display(quiet=quiet) as display:
        result = build_gallery(
            source, extractor, embedder, output, note=note, overwrite=overwrite,
            progress=display,
        )  # fmt: skip
    say(f"gallery -> {output}: " + _summary(result), quiet=quiet)


@gallery.command("import")
@click.argument("target_domains", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Gallery folder to write.",
)
@click.option(
    "--model",
    default=REFERENCE_CODE_SPEC.model,
    show_default=True,
    help="The model the features were computed with.",
)
@click.option("--timestep", type=int, default=REFERENCE_CODE_SPEC.timestep, show_default=True)
@click.option("--block", default=REFERENCE_CODE_SPEC.block, show_default=True)
@click.option(
    "--image-prompt",
    default=None,
    help="The IP-Adapter used while computing them (default: none, as the reference code).",
)
@click.option(
    "--embedder",
    default=REFERENCE_EMBEDDER,
    show_default=True,
    help="Name of the CLIP image encoder of clip_feature.pt.",
)
@overwrite_option
@quiet_option
def import_(
    target_domains: Path,
    output: Path,
    model: str,
    timestep: int,
    block: str,
    image_prompt: str | None,
    embedder: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Convert the FaceShot reference code's target_domains/<part>/<domain>/ tree.

    Each domain folder holds diff_feature.pt and clip_feature.pt; they are read safely (tensors
    only, no code).  The reference code computes them with SD 2.1 at t=301 from up_blocks[1]
    without image prompts: those are the defaults here.
    """
    spec = FeatureSpec(
        model=model,
        timestep=timestep,
        block=block,
        channels=REFERENCE_CODE_SPEC.channels,
        image_prompt=image_prompt,
    )
    result = import_reference_gallery(
        target_domains, output, spec=spec, embedder_name=embedder, overwrite=overwrite
    )
    say(f"gallery -> {output}: " + _summary(result), quiet=quiet)


@gallery.command("show")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def show(path: Path) -> None:
    """Print what a gallery holds (validating it on the way)."""
    click.echo(f"{path}: " + _summary(load_gallery(path)))


def _summary(result: Any) -> str:
    spec = result.spec
    parts = "; ".join(f"{part}: {', '.join(result.domains(part))}" for part in result.parts)
    prompt = f", image prompt {spec.image_prompt}" if spec.image_prompt else ""
    return (
        f"features {spec.model} t={spec.timestep} {spec.block} ({spec.channels} ch{prompt}), "
        f"embedder {result.embedder}; {parts}"
    )
