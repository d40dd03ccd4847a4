"""Backend options: each backend's own pydantic model, validated with one clear line on error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from faceshot_core.errors import FaceshotUserError


class BackendOptionError(FaceshotUserError):
    """Options (or a request) that the backend does not know or cannot accept."""


class BackendOptions(BaseModel):
    """Base of every backend's options model: unknown options are refused, values are frozen.

    A backend with weights gives its options a ``weights`` field (a folder, ``None`` by
    default): ``faceshot run --option weights=DIR`` then points it at its files.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_options(
    backend: str, model: type[BackendOptions], options: Mapping[str, Any] | BaseModel | None
) -> BackendOptions:
    """``options`` validated by ``model``; a mistake is one line naming the backend and field."""
    if isinstance(options, model):
        return options
    if isinstance(options, BaseModel):
        options = options.model_dump()
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "options"
        known = ", ".join(model.model_fields) or "none"
        if first["type"] == "extra_forbidden":
            msg = f"backend {backend!r} has no option {field!r} (its options: {known})"
        else:
            msg = f"backend {backend!r} option {field!r}: {first['msg']}"
        raise BackendOptionError(msg) from None
