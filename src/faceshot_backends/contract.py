"""The backend contract (version 2): what an animator plugin implements.

A backend has two halves, the habit of diffusers' ``from_pretrained``:

* a **class-level description**, cheap to read, used by ``faceshot backends``, the runner's
  checks and a UI: ``name``, ``description``, ``Options`` (a pydantic model),
  ``capabilities`` (:class:`~faceshot_backends.capabilities.Capabilities`), and the classmethods
  ``weight_specs(options)`` (which files it needs; may depend on options) and
  ``readiness(options, device)`` (whether those files and the device are here);
* an expensive **load step**, ``load(options, runtime, progress)``, that returns an
  :class:`Animator`: a context manager holding the loaded models, used for many clips
  (``animate(request, progress)`` yields frames lazily), whose ``close()`` frees its memory.

:func:`contract_problems` is the one definition of "is this a backend": registration refuses a
class it finds problems with (naming the plugin and what is missing), and the runner and the
conformance kit apply the same check.  Most backends subclass :class:`BaseBackend` (the
plumbing) and, when each pose renders on its own,
:class:`~faceshot_backends.per_frame.PerFrameBackend`.

Plugins may pin the contract: ``CONTRACT_VERSION`` changes its major number when a backend
written for the old one would break.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from faceshot_backends.capabilities import Capabilities, WorkingSize
from faceshot_backends.options import BackendOptionError, BackendOptions, parse_options
from faceshot_backends.request import AnimationRequest, Runtime
from faceshot_core.errors import MissingDependencyError
from faceshot_core.progress import ProgressSink
from faceshot_core.torch_support import cuda_available
from faceshot_core.weights import MissingFile, WeightSpec, find_weights

#: The version of this contract, ``(major, minor)``.  Major: incompatible changes.
CONTRACT_VERSION = (2, 1)

__all__ = [
    "CONTRACT_VERSION",
    "Animator",
    "Backend",
    "BackendNotReadyError",
    "BaseAnimator",
    "BaseBackend",
    "Readiness",
    "contract_problems",
]


class BackendNotReadyError(MissingDependencyError):
    """The backend cannot run here (weights missing, no GPU ...)."""


class Readiness(BaseModel):
    """Whether a backend can run here, and if not, exactly why (every missing file, where)."""

    model_config = ConfigDict(frozen=True)

    ready: bool
    problems: tuple[str, ...] = ()
    missing: tuple[MissingFile, ...] = ()

    def summary(self) -> str:
        if self.ready:
            return "ready"
        parts = list(self.problems)
        groups: dict[tuple[str, ...], list[str]] = {}
        for m in self.missing:  # one clause per set of places searched, not one per file
            groups.setdefault(m.searched, []).append(m.path)
        for searched, paths in groups.items():
            where = ", ".join(searched) or "no weights folder, environment variable or cache"
            names = paths[0] if len(paths) == 1 else f"{len(paths)} files ({', '.join(paths)})"
            parts.append(f"missing {names} (looked in {where})")
        return "; ".join(parts) or "not ready"


@runtime_checkable
class Animator(Protocol):
    """A loaded backend: animate many clips, then ``close()`` (or leave its ``with`` block)."""

    def animate(
        self, request: AnimationRequest, progress: ProgressSink | None = None
    ) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Animator: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Backend(Protocol):
    """The class-level half of a backend (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Options: ClassVar[type[BackendOptions]]
    capabilities: ClassVar[Capabilities]

    @classmethod
    def default_options(cls) -> BackendOptions: ...

    @classmethod
    def parse_options(cls, options: Mapping[str, Any] | BaseModel | None) -> BackendOptions: ...

    @classmethod
    def weight_specs(cls, options: BackendOptions) -> tuple[WeightSpec, ...]: ...

    @classmethod
    def readiness(cls, options: BackendOptions, device: str | None = None) -> Readiness: ...

    @classmethod
    def load(
        cls, options: BackendOptions, runtime: Runtime, progress: ProgressSink | None = None
    ) -> Animator: ...


_CLASSMETHODS = ("default_options", "parse_options", "weight_specs", "readiness", "load")


def contract_problems(cls: object) -> list[str]:
    """Everything that keeps ``cls`` from being a backend; empty when it is one.

    Checked without loading anything: the attributes and their types, the classmethods, and
    that the default options validate.  One definition, used by registration, the runner and
    the conformance kit alike.
    """
    if not isinstance(cls, type):
        return [f"expected a backend class, got {cls!r}"]
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        problems.append(f"name must be a short identifier, got {name!r}")
    if not isinstance(getattr(cls, "description", None), str):
        problems.append("description must be a string (one line for `faceshot backends`)")
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, BackendOptions)):
        problems.append("Options must be a subclass of faceshot_backends.BackendOptions")
    if not isinstance(getattr(cls, "capabilities", None), Capabilities):
        problems.append("capabilities must be a faceshot_backends.Capabilities")
    for method in _CLASSMETHODS:
        attr = inspect.getattr_static(cls, method, None)
        if attr is None:
            problems.append(f"no {method}() (subclass faceshot_backends.BaseBackend)")
        elif not isinstance(attr, classmethod):
            problems.append(f"{method}() must be a classmethod")
    if not problems:
        try:
            cls.default_options()  # type: ignore[attr-defined]
        except Exception as exc:  # a plugin's own bug: report it, do not crash the registry
            problems.append(f"its default options do not validate ({exc})")
    return problems


class BaseAnimator:
    """Plumbing for animators: a context manager whose ``close()`` runs once.

    Subclasses implement :meth:`animate` and, when they hold models, :meth:`release` (drop
    references; accelerator memory is then given back by
    :func:`faceshot_core.torch_support.free_accelerator_memory`).
    """

    def __init__(self, options: BackendOptions, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime
        self.closed = False

    def animate(
        self, request: AnimationRequest, progress: ProgressSink | None = None
    ) -> Iterator[np.ndarray]:
        raise NotImplementedError(f"{type(self).__qualname__} must implement animate()")

    def release(self) -> None:
        """Drop what :meth:`close` should free (models, buffers)."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.release()

    def check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{type(self).__qualname__} was closed; load the backend again")

    def __enter__(self) -> BaseAnimator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BaseBackend:
    """The class-level plumbing: options, weights, readiness; subclasses write :meth:`load`.

    Set ``name``, ``description``, ``Options`` and ``capabilities``; list weight files by
    overriding :meth:`weight_specs` (the folder comes from a ``weights`` option, the spec's
    environment variable or the Hugging Face cache; see :mod:`faceshot_core.weights`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities: ClassVar[Capabilities] = Capabilities()

    @classmethod
    def default_options(cls) -> BackendOptions:
        return cls.parse_options(None)

    @classmethod
    def parse_options(cls, options: Mapping[str, Any] | BaseModel | None) -> BackendOptions:
        """Validate user options with the backend's own model; one clear line on error."""
        return parse_options(cls.name, cls.Options, options)

    @classmethod
    def weight_specs(cls, options: BackendOptions) -> tuple[WeightSpec, ...]:
        """The weight files the backend needs with these options (none by default)."""
        return ()

    @classmethod
    def working_size(cls, options: BackendOptions) -> WorkingSize | None:
        """The frame size the model works at with ``options`` (contract 2.1).

        By default the declared ``capabilities.working_size``; a backend with a resolution
        option overrides this so the runner maps the reference to the size it will really use.
        """
        return cls.capabilities.working_size

    @classmethod
    def weights_folder(cls, options: BackendOptions) -> Path | None:
        """The folder the user gave with ``--option weights=DIR`` (``None``: search)."""
        folder = getattr(options, "weights", None)
        return Path(folder).expanduser() if folder else None

    @classmethod
    def readiness(cls, options: BackendOptions, device: str | None = None) -> Readiness:
        """Ready when the device can be used and every weight file is found (nothing loads)."""
        problems: list[str] = []
        wants_cuda = device is not None and device.startswith("cuda")
        if (cls.capabilities.gpu_only or wants_cuda) and not cuda_available():
            problems.append("needs a CUDA GPU and PyTorch with CUDA; none found here")
        if device is not None and device.partition(":")[0] not in (*cls.capabilities.devices,
                                                                   "auto"):  # fmt: skip
            problems.append(f"cannot run on {device}; it runs on "
                            f"{', '.join(cls.capabilities.devices)}")  # fmt: skip
        missing: list[MissingFile] = []
        folder = cls.weights_folder(options)
        for spec in cls.weight_specs(options):
            missing.extend(find_weights(spec, folder).missing)
        return Readiness(ready=not problems and not missing, problems=tuple(problems),
                         missing=tuple(missing))  # fmt: skip

    @classmethod
    def load(
        cls, options: BackendOptions, runtime: Runtime, progress: ProgressSink | None = None
    ) -> Animator:
        raise NotImplementedError(f"{cls.__qualname__} must implement load()")


def contract_error(cls: object) -> str | None:
    """One line saying why ``cls`` is not a backend (``None`` when it is one)."""
    problems = contract_problems(cls)
    if not problems:
        return None
    who = getattr(cls, "__qualname__", repr(cls))
    return f"{who} is not a faceshot backend: {'; '.join(problems)}"


__all__ += ["BackendOptionError", "contract_error"]
