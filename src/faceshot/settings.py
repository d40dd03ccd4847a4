"""The settings of one ``faceshot.run``, validated in one place for the CLI and the Python API.

Backend options are *not* settings: they belong to the backend's own pydantic model and travel
as their own mapping (``options={...}``), so a misspelt ``run`` argument is reported as a
misspelt setting instead of being handed to the backend, and vice versa.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from faceshot.matching_api import MatchSettings
from faceshot_core.errors import FaceshotUserError, InvalidLandmarksError
from faceshot_core.retarget import resolve_strength
from faceshot_core.schema import PARTS


class SettingsError(FaceshotUserError):
    """A ``run`` setting that does not exist or has a bad value."""


class RunSettings(BaseModel):
    """How to run the pipeline (everything but the inputs, the output and backend options)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    backend: str = Field(default="warp", description="registered backend name")
    reference_landmarks: Path | None = Field(default=None, description="the character's 68 points")
    match: bool = Field(default=False, description="use the appearance-guided matcher first")
    matching: MatchSettings | None = Field(default=None, description="matcher gallery, weights")
    compare: bool = Field(default=False, description="also write <stem>_compare.mp4")
    overlay: bool = Field(default=False, description="also write <stem>_overlay.mp4")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    dtype: str = Field(default="auto", description="auto, float32, float16 or bfloat16")
    seed: int = Field(default=0, description="seed of generative backends")
    detector: str = Field(default="dlib", description="registered face detector")
    smoothing: Literal["one_euro"] | None = Field(
        default="one_euro", description="driving smoothing (None: raw detections)"
    )
    face: Literal["auto", "largest"] | int | tuple[float, float] = Field(
        default="auto", description="driving face: auto, largest, index (left to right), (x, y)"
    )
    parts: tuple[str, ...] | None = Field(default=None, description="parts with local motion")
    motion: dict[str, float] | None = Field(default=None, description="strength per part")
    head_motion: float = Field(default=1.0, ge=0.0, le=5.0, description="head turn/shift scale")
    head_translation: Literal["face", "pixels"] = Field(default="face", description="head shift")
    max_frames: int | None = Field(default=None, ge=1, description="animate the first N frames")
    cache_dir: Path | None = Field(default=None, description="driving-landmark cache folder")
    overwrite: bool = Field(default=False, description="replace existing outputs")

    @field_validator("parts")
    @classmethod
    def _known_parts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            unknown = [p for p in value if p not in PARTS]
            if unknown:
                raise ValueError(f"unknown part(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(PARTS)}")  # fmt: skip
        return value

    @field_validator("motion")
    @classmethod
    def _known_strengths(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            try:
                resolve_strength(value)
            except InvalidLandmarksError as exc:
                raise ValueError(str(exc)) from None
        return value

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, caller: str = "faceshot.run()"
    ) -> RunSettings:
        """Validate ``values``; a mistake is one line that names the setting (and a likely fix)."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            name = ".".join(str(p) for p in first["loc"]) or "settings"
            if first["type"] == "extra_forbidden":
                close = difflib.get_close_matches(name, cls.model_fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SettingsError(
                    f"{caller} has no setting {name!r}{hint}; backend options go in options={{...}}"
                ) from None
            raise SettingsError(f"{caller} setting {name!r}: {first['msg']}") from None
