"""Loading a backend: every check that can fail cheaply runs before the expensive load.

The order is the one a user with a multi-GB model wants: is it a backend at all, are the
options right, can the device and dtype be used, are all weight files here (every missing one
listed at once), and only then ``load()``.  The runner, ``faceshot.run``, the conformance kit
and a batch or UI process all load through :func:`load_backend`, and each keeps the returned
animator for as many clips as it likes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from faceshot_backends.contract import Animator, BackendNotReadyError, contract_error
from faceshot_backends.options import BackendOptions
from faceshot_backends.request import Runtime
from faceshot_core.errors import FaceshotError, FaceshotUserError
from faceshot_core.progress import ProgressSink, report
from faceshot_core.torch_support import DeviceError, resolve_device, resolve_dtype


class BackendContractError(FaceshotError):
    """A class that does not satisfy the backend contract (a plugin's bug)."""


def check_backend(cls: Any) -> None:
    """Raise :class:`BackendContractError` listing what keeps ``cls`` from being a backend."""
    error = contract_error(cls)
    if error:
        raise BackendContractError(error)


def ensure_ready(cls: Any, options: BackendOptions, device: str) -> None:
    """Raise :class:`BackendNotReadyError` naming every missing file or device problem."""
    readiness = cls.readiness(options, device)
    if not readiness.ready:
        raise BackendNotReadyError(f"backend {cls.name!r} is not ready: {readiness.summary()}")


def resolve_runtime(
    cls: Any, *, device: str | None = "auto", dtype: str | None = "auto", seed: int = 0
) -> Runtime:
    """The concrete device and dtype ``cls`` will run with; a clear error when impossible."""
    caps = cls.capabilities
    try:
        resolved = resolve_device(device, supported=caps.devices)
        precision = resolve_dtype(dtype, resolved, supported=caps.dtypes)
    except DeviceError as exc:
        raise DeviceError(f"backend {cls.name!r} {exc}") from None
    return Runtime(device=resolved, dtype=precision, seed=seed)


def load_backend(
    cls: Any,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    device: str | None = "auto",
    dtype: str | None = "auto",
    progress: ProgressSink | None = None,
) -> Animator:
    """Check everything cheap, then load ``cls`` once; use the result as a context manager."""
    check_backend(cls)
    opts: BackendOptions = cls.parse_options(options)
    runtime = resolve_runtime(cls, device=device, dtype=dtype)
    ensure_ready(cls, opts, runtime.device)
    report(progress, "loading", 0, 1, "models")
    try:
        animator = cls.load(opts, runtime, progress)
    except FaceshotUserError:
        raise
    except Exception as exc:
        raise BackendLoadError(f"backend {cls.name!r} failed to load: "
                               f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
    if not isinstance(animator, Animator):
        raise BackendContractError(f"{cls.__qualname__}.load() returned {animator!r}, which has "
                                   "no animate()/close()/context manager methods")  # fmt: skip
    report(progress, "loading", 1, 1, "models")
    return animator


class BackendLoadError(FaceshotError):
    """``load()`` raised: a problem of the plugin or its weights, reported in one line."""
