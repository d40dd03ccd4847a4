"""Options and parameter types shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from faceshot_core.schema import PARTS

if TYPE_CHECKING:
    from faceshot_core.detection.choice import FaceChoice

F = TypeVar("F", bound=Callable[..., Any])

overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace output files that already exist."
)
smooth_option = click.option(
    "--smooth/--no-smooth",
    default=True,
    show_default=True,
    help="Zero-lag One-Euro smoothing of the driving landmarks (when detecting on a video): "
    "removes the detector's jitter, keeps blinks and mouth openings. --no-smooth gives the "
    "raw detections.",
)
face_option = click.option(
    "--face",
    "face",
    default="auto",
    show_default=True,
    metavar="CHOICE",
    help="Which face drives when the video shows several: auto (big and central), largest, "
    "an index counted left to right from 0 (-1: rightmost), or a point X,Y in video pixels.",
)
motion_option = click.option(
    "--motion",
    default=None,
    metavar="PART=K,...",
    help="Strength of each part's motion, e.g. eyes=1.2,mouth=0.8 (parts: face_boundary or "
    "jaw, eyebrows or brows, nose, eyes, mouth; default 1, 0 freezes the part, up to 5).",
)
head_motion_option = click.option(
    "--head-motion",
    type=click.FloatRange(0.0, 5.0),
    default=1.0,
    show_default=True,
    help="Scale of the head's turn and shift: 0 keeps the head still, 1 copies the driving head.",
)
parts_option = click.option(
    "--parts",
    default=None,
    metavar="LIST",
    help="Parts that get local motion, comma separated, from face_boundary, eyebrows, nose, "
    "eyes, mouth (default: all). The others follow the head motion only.",
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars or status lines.")


class RegisteredName(click.ParamType):
    """A name from a plugin registry (detectors, backends), checked when the command runs.

    The choices are read from the registry only when needed (help, a bad value), so building
    the CLI does not load every plugin.
    """

    name = "name"

    def __init__(self, kind: str, names: Callable[[], list[str]]) -> None:
        self.kind, self.names = kind, names

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.names()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        known = self.names()
        if value not in known:
            self.fail(f"unknown {self.kind} {value!r}; choose from {', '.join(known)}", param, ctx)
        return str(value)


def _detector_names() -> list[str]:
    from faceshot_core.detection import available_detectors

    return available_detectors()


detector_option = click.option(
    "--detector",
    type=RegisteredName("detector", _detector_names),
    default="dlib",
    show_default=True,
    help="Face landmark detector (plugins can add more): 'dlib' works offline anywhere; "
    "'fan' is the paper's RetinaFace + FAN (needs `pip install faceshot[fan]` and its weights).",
)
head_translation_option = click.option(
    "--head-translation",
    type=click.Choice(["face", "pixels"]),
    default="face",
    show_default=True,
    help="How the driving head's shift carries over: scaled by the ratio of face sizes, or "
    "copied in pixels (the paper, which assumes both faces at 512x512 and of similar size).",
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


def parse_motion(value: str | None) -> dict[str, float] | None:
    """``"eyes=1.2,mouth=0.8"`` -> ``{"eyes": 1.2, "mouth": 0.8}``, validated."""
    from faceshot_core.errors import InvalidLandmarksError
    from faceshot_core.retarget import resolve_strength

    if value is None or not value.strip():
        return None
    out: dict[str, float] = {}
    for item in value.split(","):
        name, sep, number = item.partition("=")
        try:
            out[name.strip()] = float(number)
        except ValueError:
            raise click.BadParameter(f"expected PART=NUMBER, got {item.strip()!r}") from None
        if not sep:
            raise click.BadParameter(f"expected PART=NUMBER, got {item.strip()!r}")
    try:
        resolve_strength(out)
    except InvalidLandmarksError as exc:
        raise click.BadParameter(str(exc)) from None
    return out


def parse_face(value: str) -> FaceChoice:
    """``auto``, ``largest``, ``1`` or ``320,180`` as a face choice."""
    from faceshot_core.detection.choice import FaceChoiceError, parse_face_choice

    try:
        return parse_face_choice(value)
    except FaceChoiceError as exc:
        raise click.BadParameter(str(exc)) from None


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
