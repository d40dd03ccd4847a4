"""Landmark files: faceshot JSON, NumPy ``.npz``/``.npy``, iBUG ``.pts`` and plain ``.txt``.

All readers funnel through one pydantic model, :class:`LandmarkRecord`, so every format is
checked the same way at the boundary (shape, finiteness, points inside the image, frame flags)
and every failure names the file and the problem in one line.

Formats (see ``docs/landmark-format.md`` for the full description):

* ``.json`` - faceshot's own, human-readable: ``{"format": "faceshot-landmarks",
  "schema_version": 1, "image_size": [w, h], "points": [[x, y], ...]}`` for one face, or
  ``"points": [[[x, y], ...], ...]`` for a sequence with optional ``"fps"`` and
  ``"interpolated"`` (one boolean per frame); an optional ``"note"`` (free text) is allowed.
* ``.npz`` - the same fields as arrays (``points``, ``image_size``, optional ``fps`` and
  ``interpolated``, ``schema_version``); compact for long sequences.
* ``.npy`` - a bare ``[68, 2]`` or ``[M, 68, 2]`` array.
* ``.pts`` - iBUG 300-W: ``version: 1``, ``n_points: 68``, points in braces, **1-based**.
* ``.txt`` - 68 lines of ``x y`` (0-based pixels), as many annotation sets ship.

The last three formats do not record the image size: pass ``image_size`` or keep the image
beside the file with the same stem (``face.png`` + ``face.pts``, the 300-W layout), whose size is
then read from its header.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from faceshot_core.atomic import atomic_output
from faceshot_core.errors import InvalidLandmarksError, LandmarkFileError
from faceshot_core.landmarks import (
    FaceLandmarks,
    ImageSize,
    LandmarkSequence,
    check_points,
)
from faceshot_core.schema import NUM_POINTS

FORMAT_NAME = "faceshot-landmarks"
SCHEMA_VERSION = 1
SUFFIXES = (".json", ".npz", ".npy", ".pts", ".txt")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

Landmarks: TypeAlias = FaceLandmarks | LandmarkSequence


class LandmarkRecord(BaseModel):
    """The validated content of any landmark file."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    format: Literal["faceshot-landmarks"] = "faceshot-landmarks"
    schema_version: Literal[1] = 1
    image_size: tuple[int, int] = Field(description="(width, height) in pixels")
    points: np.ndarray = Field(description="[68, 2] or [M, 68, 2] pixel (x, y)")
    fps: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    interpolated: np.ndarray | None = None
    note: str | None = Field(default=None, description="free text: who made it, how")

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] <= 0 or value[1] <= 0:
            raise ValueError(f"must be positive, got {value[0]}x{value[1]}")
        return value

    @field_validator("points", mode="before")
    @classmethod
    def _numeric_points(cls, value: Any) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError("points must be numbers arranged as [68, 2] or [M, 68, 2]") from exc
        return arr

    @field_validator("interpolated", mode="before")
    @classmethod
    def _bool_flags(cls, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        arr = np.asarray(value)
        if arr.ndim != 1 or not (arr.dtype == np.bool_ or np.isin(arr, (0, 1)).all()):
            raise ValueError("must be a list of booleans, one per frame")
        return arr.astype(bool)

    @model_validator(mode="after")
    def _consistent(self) -> LandmarkRecord:
        is_sequence = self.points.ndim == 3
        # check_points raises InvalidLandmarksError (a ValueError) with the precise problem.
        check_points(self.points, self.image_size, sequence=is_sequence, source="points")
        if not is_sequence and (self.interpolated is not None or self.fps is not None):
            raise ValueError("fps and interpolated apply to sequences ([M, 68, 2]) only")
        if self.interpolated is not None and len(self.interpolated) != len(self.points):
            raise ValueError(
                f"{len(self.points)} frames but {len(self.interpolated)} interpolated flags"
            )
        return self

    def to_landmarks(self, source: str) -> Landmarks:
        if self.points.ndim == 2:
            return FaceLandmarks(self.points, self.image_size, source=source)
        return LandmarkSequence(
            self.points, self.image_size, self.fps, self.interpolated, source=source
        )


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    extra = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{path}: {loc + ': ' if loc else ''}{msg}{extra}"


def _record(path: Path, fields: dict[str, Any]) -> LandmarkRecord:
    try:
        return LandmarkRecord.model_validate(fields)
    except ValidationError as exc:
        raise InvalidLandmarksError(_format_validation_error(path, exc)) from None


# ---------------------------------------------------------------------------------------------
# Reading


def load_landmarks(
    path: str | os.PathLike[str], *, image_size: ImageSize | None = None
) -> Landmarks:
    """Read a landmark file of any supported format.

    Returns :class:`FaceLandmarks` for one face and :class:`LandmarkSequence` for ``[M, 68, 2]``.
    ``image_size`` is needed only for formats that do not record it (``.npy``, ``.pts``,
    ``.txt``) when no same-stem image lies beside the file; when given for ``.json``/``.npz``
    it must agree with the file.
    """
    p = Path(path)
    if not p.is_file():
        raise LandmarkFileError(
            f"landmark file {p} does not exist" if not p.exists() else f"{p} is not a file"
        )
    suffix = p.suffix.lower()
    readers = {
        ".json": _read_json,
        ".npz": _read_npz,
        ".npy": _read_npy,
        ".pts": _read_pts,
        ".txt": _read_txt,
    }
    if suffix not in readers:
        raise LandmarkFileError(
            f"{p}: unknown landmark format {suffix or '(no suffix)'}; use one of "
            + ", ".join(SUFFIXES)
        )
    fields = readers[suffix](p)
    recorded = fields.get("image_size")
    if recorded is None:
        fields["image_size"] = image_size if image_size is not None else _size_from_sibling(p)
    elif image_size is not None and tuple(recorded) != tuple(image_size):
        raise InvalidLandmarksError(
            f"{p}: landmarks are for a {recorded[0]}x{recorded[1]} image, "
            f"but the image is {image_size[0]}x{image_size[1]}"
        )
    return _record(p, fields).to_landmarks(source=str(p))


def load_face(
    path: str | os.PathLike[str], *, image_size: ImageSize | None = None
) -> FaceLandmarks:
    """Read a file that must hold one face (a one-frame sequence is accepted)."""
    lms = load_landmarks(path, image_size=image_size)
    if isinstance(lms, LandmarkSequence):
        if len(lms) != 1:
            raise InvalidLandmarksError(
                f"{path}: expected the landmarks of one face [68, 2], found a sequence of "
                f"{len(lms)} frames"
            )
        return lms[0]
    return lms


def load_sequence(
    path: str | os.PathLike[str], *, image_size: ImageSize | None = None
) -> LandmarkSequence:
    """Read a file that must hold a sequence (one face becomes a one-frame sequence)."""
    lms = load_landmarks(path, image_size=image_size)
    if isinstance(lms, FaceLandmarks):
        return LandmarkSequence(lms.points[None], lms.image_size, source=lms.source)
    return lms


def _size_from_sibling(p: Path) -> ImageSize:
    for suffix in _IMAGE_SUFFIXES:
        for candidate in (p.with_suffix(suffix), p.with_suffix(suffix.upper())):
            if candidate.is_file():
                try:
                    with Image.open(candidate) as img:
                        return img.size
                except (UnidentifiedImageError, OSError):
                    continue
    raise LandmarkFileError(
        f"{p}: this format does not record the image size; give it explicitly "
        f"(--image-size WxH) or keep the image beside it as {p.stem}.png/.jpg"
    )


def _read_json(p: Path) -> dict[str, Any]:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise LandmarkFileError(f"{p}: not a text file ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise LandmarkFileError(f"{p}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise LandmarkFileError(f"{p}: expected a JSON object with image_size and points")
    if data.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise LandmarkFileError(f"{p}: not a faceshot landmark file (format {data['format']!r})")
    if "image_size" not in data or "points" not in data:
        missing = [k for k in ("image_size", "points") if k not in data]
        raise LandmarkFileError(f"{p}: missing field(s) {', '.join(missing)}")
    return data


def _read_npz(p: Path) -> dict[str, Any]:
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise LandmarkFileError(f"{p}: not a readable .npz file ({exc})") from None
    if "points" not in arrays:
        raise LandmarkFileError(f"{p}: no 'points' array (found: {', '.join(arrays) or 'none'})")
    fields: dict[str, Any] = {"points": arrays.pop("points")}
    if "image_size" in arrays:
        fields["image_size"] = tuple(int(v) for v in np.asarray(arrays.pop("image_size")).ravel())
    if "fps" in arrays:
        fps = float(np.asarray(arrays.pop("fps")))
        fields["fps"] = None if np.isnan(fps) else fps
    if "interpolated" in arrays:
        fields["interpolated"] = arrays.pop("interpolated")
    if "schema_version" in arrays:
        fields["schema_version"] = int(np.asarray(arrays.pop("schema_version")))
    arrays.pop("format", None)
    if arrays:
        raise LandmarkFileError(f"{p}: unexpected arrays {', '.join(sorted(arrays))}")
    return fields


def _read_npy(p: Path) -> dict[str, Any]:
    try:
        points = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise LandmarkFileError(f"{p}: not a readable .npy file ({exc})") from None
    return {"points": points}


def _read_pts(p: Path) -> dict[str, Any]:
    lines = _text_lines(p)
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise LandmarkFileError(f"{p}: not an iBUG .pts file (no '{{ ... }}' block)") from None
    header = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[:start])
    )
    points = _parse_xy(p, lines[start + 1 : end])
    if "n_points" in header and header["n_points"] != str(len(points)):
        raise LandmarkFileError(
            f"{p}: header says n_points {header['n_points']} but the file has {len(points)}"
        )
    return {"points": np.asarray(points) - 1.0}  # iBUG .pts is 1-based


def _read_txt(p: Path) -> dict[str, Any]:
    return {"points": np.asarray(_parse_xy(p, _text_lines(p)))}


def _text_lines(p: Path) -> list[str]:
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LandmarkFileError(f"{p}: not a text landmark file") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _parse_xy(p: Path, lines: list[str]) -> list[tuple[float, float]]:
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.replace(",", " ").split()
        try:
            if len(parts) != 2:
                raise ValueError
            out.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise LandmarkFileError(f"{p}: point {n} is not 'x y': {line[:60]!r}") from None
    if len(out) != NUM_POINTS:
        raise InvalidLandmarksError(f"{p}: expected {NUM_POINTS} points, found {len(out)}")
    return out


# ---------------------------------------------------------------------------------------------
# Writing


def save_landmarks(
    path: str | os.PathLike[str], landmarks: Landmarks, *, overwrite: bool = True
) -> Path:
    """Write landmarks atomically in the format chosen by the suffix of ``path``.

    ``.pts`` and ``.txt`` hold one face only; ``.npy`` drops the image size and flags (a warning
    is not enough, so prefer ``.npz``/``.json`` for sequences you want to reuse).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise LandmarkFileError(
            f"{p}: unknown landmark format {suffix or '(no suffix)'}; use one of "
            + ", ".join(SUFFIXES)
        )
    is_sequence = isinstance(landmarks, LandmarkSequence)
    if suffix in (".pts", ".txt") and is_sequence:
        raise LandmarkFileError(f"{p}: {suffix} holds one face; use .npz or .json for sequences")
    with atomic_output(p, overwrite=overwrite) as tmp:
        if suffix == ".json":
            tmp.write_text(json.dumps(_json_fields(landmarks), separators=(",", ":")) + "\n")
        elif suffix == ".npz":
            with tmp.open("wb") as fh:
                np.savez_compressed(fh, **_npz_fields(landmarks))  # type: ignore[arg-type]
        elif suffix == ".npy":
            with tmp.open("wb") as fh:
                np.save(fh, landmarks.points)
        else:
            offset = 1.0 if suffix == ".pts" else 0.0
            body = "\n".join(f"{x + offset:.3f} {y + offset:.3f}" for x, y in landmarks.points)
            head = f"version: 1\nn_points: {NUM_POINTS}\n{{\n" if suffix == ".pts" else ""
            tail = "\n}\n" if suffix == ".pts" else "\n"
            tmp.write_text(head + body + tail)
    return p


def _json_fields(lms: Landmarks) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "image_size": list(lms.image_size),
        "points": np.round(lms.points.astype(np.float64), 3).tolist(),
    }
    if isinstance(lms, LandmarkSequence):
        if lms.fps is not None:
            fields["fps"] = lms.fps
        if lms.flags.any():
            fields["interpolated"] = lms.flags.tolist()
    return fields


def _npz_fields(lms: Landmarks) -> dict[str, np.ndarray]:
    fields = {
        "schema_version": np.asarray(SCHEMA_VERSION),
        "image_size": np.asarray(lms.image_size, dtype=np.int64),
        "points": lms.points,
    }
    if isinstance(lms, LandmarkSequence):
        fields["fps"] = np.asarray(np.nan if lms.fps is None else lms.fps)
        fields["interpolated"] = lms.flags
    return fields
