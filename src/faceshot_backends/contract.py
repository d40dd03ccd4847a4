"""The backend contract: what an animator plugin implements, and what it is given.

A backend turns a character image plus a reposed 68-point landmark sequence into frames.  It
is a class with:

* ``name`` - a short identifier (``--backend NAME``);
* ``Options`` - a pydantic model of its own options (subclass :class:`BackendOptions`, which
  forbids unknown fields, so a typo in ``--option`` is an error, not a silent default);
* ``requirements`` - a :class:`Requirements`: GPU or not, weight files, frame limits;
* ``check(options)`` - a :class:`Readiness` report that lists exactly which weight files are
  missing and where they were looked for;
* ``animate(request, progress)`` - an *iterator* of RGB uint8 frames, one per landmark frame,
  produced lazily so memory does not grow with video length.

:class:`BaseBackend` implements the plumbing (option parsing, a readiness check from
``requirements``) so a backend writes only ``animate``.  ``faceshot_backends.testing`` holds a
conformance kit that checks a backend against this contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from faceshot_core.errors import FaceshotUserError, MissingDependencyError
from faceshot_core.landmarks import check_points

ProgressCallback = Callable[[int, int | None], None]
Dtype = Literal["float32", "float16", "bfloat16"]


class BackendOptionError(FaceshotUserError):
    """Options that the backend does not know or cannot accept."""


class BackendNotReadyError(MissingDependencyError):
    """The backend cannot run here (weights missing, no GPU ...)."""


class BackendOptions(BaseModel):
    """Base of every backend's options model: unknown options are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightFile(BaseModel):
    """A weight file a backend needs, relative to its weights folder."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="path relative to the weights folder")
    description: str = ""


class Requirements(BaseModel):
    """What a backend needs to run; shown by ``faceshot backends``."""

    model_config = ConfigDict(frozen=True)

    gpu: bool = False
    weights: tuple[WeightFile, ...] = ()
    min_frames: int = Field(default=1, ge=1)
    max_frames: int | None = Field(default=None, ge=1)
    frame_size: tuple[int, int] | None = Field(
        default=None, description="(width, height) the model works at, when fixed"
    )


class MissingFile(BaseModel):
    """A required file that was not found, and every place it was looked for."""

    model_config = ConfigDict(frozen=True)

    path: str
    searched: tuple[str, ...]


class Readiness(BaseModel):
    """Whether a backend can run here, and if not, exactly why."""

    model_config = ConfigDict(frozen=True)

    ready: bool
    problems: tuple[str, ...] = ()
    missing: tuple[MissingFile, ...] = ()

    def summary(self) -> str:
        if self.ready:
            return "ready"
        parts = list(self.problems)
        for m in self.missing:
            parts.append(f"missing {m.path} (looked in {', '.join(m.searched)})")
        return "; ".join(parts) or "not ready"


class AnimationRequest(BaseModel):
    """Everything a backend is given to animate one character.

    ``sequence[0]`` equals ``reference_landmarks`` (FaceShot's convention: the first output
    frame is the reference pose).  Points are pixel ``(x, y)`` in the reference image.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    reference_image: np.ndarray = Field(description="RGB uint8 [H, W, 3]")
    reference_landmarks: np.ndarray = Field(description="float32 [68, 2]")
    sequence: np.ndarray = Field(description="float32 [M, 68, 2], frame 0 = the reference")
    fps: float = Field(gt=0, allow_inf_nan=False)
    output_size: tuple[int, int] | None = Field(
        default=None, description="(width, height) of the frames; None: the reference size"
    )
    seed: int = 0
    device: str = "cpu"
    dtype: Dtype = "float32"
    options: BackendOptions = Field(default_factory=BackendOptions)

    @field_validator("reference_image")
    @classmethod
    def _rgb_uint8(cls, value: np.ndarray) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 2:
            raise ValueError(f"must be RGB uint8 [H, W, 3], got {arr.dtype} {list(arr.shape)}")
        return arr

    @field_validator("output_size")
    @classmethod
    def _positive(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (value[0] < 2 or value[1] < 2):
            raise ValueError(f"must be at least 2x2, got {value[0]}x{value[1]}")
        return value

    @model_validator(mode="after")
    def _landmarks(self) -> AnimationRequest:
        h, w = self.reference_image.shape[:2]
        ref = check_points(self.reference_landmarks, (w, h), sequence=False, source="reference")
        seq = check_points(self.sequence, (w, h), sequence=True, source="sequence")
        object.__setattr__(self, "reference_landmarks", ref)
        object.__setattr__(self, "sequence", seq)
        return self

    @property
    def num_frames(self) -> int:
        return int(self.sequence.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames the backend must yield."""
        h, w = self.reference_image.shape[:2]
        return self.output_size or (w, h)


@runtime_checkable
class Backend(Protocol):
    """The protocol every backend class satisfies (see the module docstring)."""

    name: ClassVar[str]
    Options: ClassVar[type[BackendOptions]]
    requirements: ClassVar[Requirements]

    def check(self, options: BackendOptions | None = None) -> Readiness: ...

    def animate(
        self, request: AnimationRequest, progress: ProgressCallback | None = None
    ) -> Iterator[np.ndarray]: ...


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device (without importing it needlessly)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` at ``size`` = ``(width, height)`` (area filter down, bicubic up)."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == tuple(size):
        return frame
    shrink = size[0] * size[1] < w * h
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class BaseBackend:
    """Plumbing shared by backends: option parsing and a weights-based readiness check.

    Subclasses set ``name``, ``Options``, ``requirements`` and implement :meth:`animate`.  A
    backend with weights gives its options a ``weights_dir`` field (a folder) and may override
    :meth:`weight_search_paths` to add places such as the Hugging Face cache.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    requirements: ClassVar[Requirements] = Requirements()

    @classmethod
    def parse_options(cls, options: Mapping[str, Any] | BackendOptions | None) -> BackendOptions:
        """Validate user options with the backend's own model; one clear line on error."""
        if isinstance(options, cls.Options):
            return options
        if isinstance(options, BackendOptions):
            options = options.model_dump()
        try:
            return cls.Options.model_validate(dict(options or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "options"
            known = ", ".join(cls.Options.model_fields) or "none"
            if first["type"] == "extra_forbidden":
                msg = f"backend {cls.name!r} has no option {field!r} (its options: {known})"
            else:
                msg = f"backend {cls.name!r} option {field!r}: {first['msg']}"
            raise BackendOptionError(msg) from None

    def weight_search_paths(self, options: BackendOptions) -> list[Path]:
        """Folders searched for weight files, in order."""
        folder = getattr(options, "weights_dir", None)
        return [Path(folder)] if folder else []

    def check(self, options: BackendOptions | None = None) -> Readiness:
        """Ready when every declared weight file exists in one of the search paths."""
        opts = options if options is not None else self.parse_options(None)
        problems: list[str] = []
        missing: list[MissingFile] = []
        if self.requirements.gpu and not cuda_available():
            problems.append("needs a CUDA GPU and PyTorch with CUDA; none found")
        if self.requirements.weights:
            roots = self.weight_search_paths(opts)
            if not roots:
                problems.append("no weights folder given (option weights_dir)")
            for weight in self.requirements.weights:
                if not any((root / weight.path).is_file() for root in roots):
                    missing.append(MissingFile(path=weight.path,
                                               searched=tuple(str(r) for r in roots)))  # fmt: skip
        return Readiness(ready=not problems and not missing, problems=tuple(problems),
                         missing=tuple(missing))  # fmt: skip

    def animate(
        self, request: AnimationRequest, progress: ProgressCallback | None = None
    ) -> Iterator[np.ndarray]:
        raise NotImplementedError(f"{type(self).__qualname__} must implement animate()")


class PerFrameBackend(BaseBackend):
    """A backend that renders every pose on its own: implement :meth:`prepare` and :meth:`render`.

    ``animate`` then streams the frames, resizes them to ``request.size`` and reports
    progress.  Generative backends that produce clips in chunks implement ``animate`` directly.
    """

    def prepare(self, request: AnimationRequest, options: Any) -> Any:
        """Per-reference work done once (a mesh, a model); passed to every :meth:`render`."""
        return None

    def render(self, state: Any, points: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame for landmarks ``points`` ``[68, 2]`` (any size: it is resized)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement render()")

    def animate(
        self, request: AnimationRequest, progress: ProgressCallback | None = None
    ) -> Iterator[np.ndarray]:
        state = self.prepare(request, self.parse_options(request.options))
        for m, points in enumerate(request.sequence):
            yield resize_frame(self.render(state, points), request.size)
            if progress is not None:
                progress(m + 1, request.num_frames)
