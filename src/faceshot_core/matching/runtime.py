"""The matcher's optional packages and its device/dtype rule, on top of torch_support.

torch, transformers and diffusers come with ``pip install 'faceshot[match]'``; each is imported
on first use through the ``require_*`` functions here, so importing the matcher costs nothing
and a missing package is one line saying what to install.

Where the matcher runs is :mod:`faceshot_core.torch_support`'s rule with one matcher-specific
twist: device ``None`` (or ``"auto"``) is CUDA when PyTorch sees a GPU, else the CPU; the
compute dtype is float16 on CUDA unless another is asked for, and *always* float32 elsewhere.
Half precision on a CPU is slow and lacks kernels for some layers; asking for it there is
almost certainly a GPU command line carried over, so it is not honoured (rather than refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faceshot_core import torch_support
from faceshot_core.errors import MissingDependencyError

if TYPE_CHECKING:
    import torch

__all__ = [
    "matcher_device",
    "matcher_dtype",
    "require_diffusers",
    "require_torch",
    "require_transformers",
]

EXTRA = "match"
_INSTALL_HINT = f"install the matcher's packages with: pip install 'faceshot[{EXTRA}]'"


def require_torch() -> Any:
    """torch, or a :class:`MissingDependencyError` naming the matcher's install command."""
    return torch_support.require_torch("the matcher", extra=EXTRA)


def require_transformers() -> Any:
    """transformers, or a :class:`MissingDependencyError` naming the install command."""
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(f"the matcher needs transformers; {_INSTALL_HINT}") from exc
    return transformers


def require_diffusers() -> Any:
    """diffusers, or a :class:`MissingDependencyError` naming the install command."""
    try:
        import diffusers
    except ImportError as exc:
        raise MissingDependencyError(f"the matcher needs diffusers; {_INSTALL_HINT}") from exc
    return diffusers


def matcher_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"``: cuda when PyTorch sees a GPU, else cpu; anything else as given."""
    torch = require_torch()
    if not device or (isinstance(device, str) and device.strip().lower() == "auto"):
        device = torch_support.resolve_device(None)
    return torch.device(device)


def matcher_dtype(device: str | torch.device, dtype: Any) -> torch.dtype:
    """The compute dtype: as asked on CUDA (default float16), always float32 elsewhere.

    ``dtype`` is ``None``, a ``torch.dtype`` or a name (``"float16"``, ``"fp16"``, ``"auto"``,
    ...); an unknown name raises :class:`~faceshot_core.torch_support.DeviceError` on any device.
    """
    torch = require_torch()
    if dtype is None or isinstance(dtype, str):
        dtype = torch_support.torch_dtype(torch_support.resolve_dtype(dtype, "cuda"))
    if torch.device(device).type != "cuda":
        return torch.float32
    return dtype
