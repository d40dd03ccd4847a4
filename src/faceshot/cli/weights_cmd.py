"""``faceshot weights``: which model weights each component needs, where they are, and pulling them.

Nothing else in faceshot downloads: loading reads folders and the Hugging Face cache only, so
this command is the one place where weights come from the network, and only when asked.
"""

from __future__ import annotations

from pathlib import Path

import click

from faceshot import weights_catalog
from faceshot.cli.options import quiet_option
from faceshot.cli.progress import progress_display, say
from faceshot_core.weights import WeightLocation, find_weights, pull_weights

_HF_CACHE = click.option(
    "--hf-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Hugging Face cache folder (default: HF_HUB_CACHE / HF_HOME).",
)


@click.group()
def weights() -> None:
    """Model weights of the matcher and the backends: where they are, and how to get them."""


def _describe(entry: weights_catalog.CatalogEntry, location: WeightLocation) -> list[str]:
    """A few aligned lines for one component (a table squeezes long paths into slivers)."""
    spec = entry.spec
    head = f"{spec.name}: {spec.description}" if spec.description else spec.name
    lines = [f"{head}  [{', '.join(entry.used_by)}]"]
    if spec.repo_id:
        rev = f"@{spec.revision}" if spec.revision else ""
        sub = f", in {spec.subfolder}/" if spec.subfolder else ""
        lines.append(f"  repository  {spec.repo_id}{rev}{sub}, {len(spec.files)} files")
    else:
        lines.append(f"  repository  none (a local folder), {len(spec.files)} files")
    if location.ready:
        lines.append(f"  status      found in {location.root}")
        return lines
    lines.append(f"  status      missing {len(location.missing)} of {len(spec.files)} files")
    lines += [f"  looked in   {place}" for place in location.searched]
    return lines


@weights.command("list")
@_HF_CACHE
def list_weights(hf_cache: Path | None) -> None:
    """Every component's weights: what for, from which repository, found where or missing."""
    catalog = weights_catalog.load_catalog()
    for entry in catalog:
        location = find_weights(entry.spec, cache_dir=hf_cache)
        click.echo("\n".join(_describe(entry, location)) + "\n")
    for problem in catalog.problems:
        click.echo(f"problem: {problem}")
    click.echo("get one with: faceshot weights pull NAME [--to DIR]")


@weights.command("pull")
@click.argument("name")
@click.option(
    "--to",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download into this folder (files at their repository paths) instead of the Hugging "
    "Face cache; then give this folder to the component that needs it.",
)
@_HF_CACHE
@quiet_option
def pull(name: str, to: Path | None, hf_cache: Path | None, quiet: bool) -> None:
    """Download exactly the files NAME needs from the Hugging Face Hub (see `weights list`).

    Into the Hugging Face cache by default, where faceshot finds them with no option; files
    already there are skipped and an interrupted download resumes.  HF_ENDPOINT selects a
    mirror, HF_TOKEN (or `hf auth login`) a gated or private repository.
    """
    entry = weights_catalog.load_catalog().get(name)
    with progress_display(quiet=quiet) as display:
        root = pull_weights(entry.spec, to, cache_dir=hf_cache, progress=display)
    say(f"{name}: {len(entry.spec.files)} files in {root}", quiet=quiet)
