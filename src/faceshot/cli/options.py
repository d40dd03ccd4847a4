"""Options and parameter types shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from faceshot_core.schema import PARTS

F = TypeVar("F", bound=Callable[..., Any])

overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace output files that already exist."
)
smooth_option = click.option(
    "--smooth/--no-smooth",
    default=False,
    show_default=True,
    help="One-Euro temporal smoothing of the driving landmarks (when detecting on a video): "
    "removes jitter, keeps blinks and mouth openings.",
)
parts_option = click.option(
    "--parts",
    default=None,
    metavar="LIST",
    help="Parts that get local motion, comma separated, from face_boundary, eyebrows, nose, "
    "eyes, mouth (default: all). The others follow the head motion only.",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars or status lines.")
detector_option = click.option(
    "--detector",
    type=click.Choice(["dlib", "fan"]),
    default="dlib",
    show_default=True,
    help="Face landmark detector: 'dlib' works offline anywhere; 'fan' is the paper's "
    "RetinaFace + FAN (needs `pip install faceshot[fan]` and its weights).",
)
image_size_option = click.option(
    "--image-size",
    default=None,
    metavar="WxH",
    help="Image size for landmark formats that do not record it (.pts, .npy, .txt) when the "
    "image is not beside the file.",
)
fan_weights_option = click.option(
    "--fan-weights",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding the FAN/RetinaFace weight files (default: facexlib's own location).",
)


def input_file(**kwargs: Any) -> click.Path:
    """A path that must exist and be a file (click reports it with exit code 2)."""
    return click.Path(exists=True, dir_okay=False, path_type=Path, **kwargs)


def output_file() -> click.Path:
    return click.Path(dir_okay=False, path_type=Path)


def parse_parts(value: str | None) -> list[str] | None:
    """``"eyes,mouth"`` -> ``["eyes", "mouth"]``; ``None``/``"all"`` -> all parts."""
    if value is None or value.strip().lower() == "all":
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise click.BadParameter(
            f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)} or 'all'"
        )
    return names


def parse_size(value: str | None) -> tuple[int, int] | None:
    """``"512x512"`` -> ``(512, 512)``."""
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 512x512, got {value!r}") from None
    if w <= 0 or h <= 0:
        raise click.BadParameter(f"sizes must be positive, got {value!r}")
    return w, h
