"""Torch helpers shared by the matcher and every GPU backend plugin (one place, one behaviour).

torch is optional for faceshot: the warp animator and the detectors run without it.  Whatever
needs it imports it through :func:`require_torch`, which turns a missing install into one line
saying what to install.  Device and dtype names are resolved here so that ``--device auto``
and ``--dtype auto`` mean the same thing for the matcher, the backends and the CLI:

* device ``auto`` is ``cuda`` when PyTorch sees a CUDA device, else ``cpu``; ``cuda`` and
  ``cuda:N`` are checked against what is present, so a missing GPU is reported before a
  multi-GB model starts loading;
* dtype ``auto`` is ``float16`` on CUDA and ``float32`` elsewhere (half precision on a CPU is
  slow and lacks kernels for some layers).

Importing this module does not import torch.
"""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import Sequence
from typing import Any, Literal, cast

from faceshot_core.errors import FaceshotUserError, MissingDependencyError

__all__ = [
    "DTYPES",
    "DeviceError",
    "cuda_available",
    "free_accelerator_memory",
    "place",
    "require_torch",
    "resolve_device",
    "resolve_dtype",
    "seeded_generator",
    "torch_dtype",
]

DtypeName = Literal["float32", "float16", "bfloat16"]
DTYPES: tuple[DtypeName, ...] = ("float32", "float16", "bfloat16")
_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


class DeviceError(FaceshotUserError):
    """A device or dtype that cannot be used here (no CUDA, unknown name, unsupported)."""


def require_torch(purpose: str = "this feature", extra: str | None = None) -> Any:
    """Import torch, or raise one line naming ``purpose`` and the install command."""
    try:
        import torch
    except ImportError as exc:
        how = f"pip install 'faceshot[{extra}]'" if extra else "pip install torch"
        raise MissingDependencyError(f"{purpose} needs PyTorch; install it with: {how}") from exc
    return torch


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device (torch is not imported if absent)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(name: str | None, supported: Sequence[str] = ("cpu", "cuda")) -> str:
    """A concrete device name (``cpu``, ``cuda``, ``cuda:1``) from what the user asked.

    ``supported`` lists the device *types* the caller can use; ``auto`` picks the first of
    ``cuda``/``cpu`` that is both supported and present.  Raises :class:`DeviceError` with the
    reason when the request cannot be met.
    """
    asked = (name or "auto").strip().lower()
    has_cuda = cuda_available()
    if asked == "auto":
        if "cuda" in supported and has_cuda:
            return "cuda"
        if "cpu" in supported:
            return "cpu"
        raise DeviceError(
            "needs a CUDA GPU, and PyTorch sees none here"
            + ("" if importlib.util.find_spec("torch") else " (PyTorch is not installed)")
        )
    kind, _, index = asked.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if kind not in supported:
        raise DeviceError(f"cannot run on {kind}; supported devices: {', '.join(supported)}")
    if kind == "cuda":
        if not has_cuda:
            raise DeviceError(f"device {asked!r} asked for, but PyTorch sees no CUDA GPU here")
        import torch

        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"device {asked!r} asked for, but only {torch.cuda.device_count()} CUDA "
                "device(s) are visible"
            )
    return asked


def resolve_dtype(name: str | None, device: str, supported: Sequence[str] = DTYPES) -> DtypeName:
    """A dtype name for ``device``: ``auto`` is float16 on CUDA (if supported), else float32."""
    asked = _ALIASES.get((name or "auto").lower(), (name or "auto").lower())
    on_gpu = device.startswith("cuda")
    if asked == "auto":
        preferred: tuple[DtypeName, ...] = (
            ("float16", "bfloat16", "float32") if on_gpu else ("float32",)
        )
        for choice in preferred:
            if choice in supported:
                return choice
        return cast(DtypeName, supported[0])
    if asked not in DTYPES:
        raise DeviceError(f"unknown dtype {name!r}; use auto, {', '.join(DTYPES)}")
    if asked not in supported:
        raise DeviceError(f"dtype {asked} is not supported; supported: {', '.join(supported)}")
    return asked


def torch_dtype(name: str) -> Any:
    """The ``torch.dtype`` for a dtype name (aliases such as ``fp16`` accepted)."""
    torch = require_torch()
    key = _ALIASES.get(name, name)
    try:
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[key]
    except KeyError:
        raise DeviceError(f"unknown dtype {name!r}; use {', '.join(DTYPES)}") from None


def seeded_generator(seed: int, device: str = "cpu") -> Any:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (diffusers' habit)."""
    torch = require_torch()
    return torch.Generator(device=device).manual_seed(int(seed))


def place(module: Any, device: Any, dtype: Any) -> Any:
    """Move ``module`` to ``device``, cast it to ``dtype`` only when needed, eval mode.

    Skipping a no-op cast avoids diffusers' warning about casting with ``to()``.
    """
    params = next(module.parameters(), None)
    if params is not None and params.dtype != dtype:
        module = module.to(dtype=dtype)
    return module.to(device=device).eval()


def free_accelerator_memory() -> None:
    """Give cached accelerator memory back after a model is dropped (no-op without CUDA)."""
    gc.collect()
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
