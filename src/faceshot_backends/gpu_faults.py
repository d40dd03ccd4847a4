"""A GPU that runs out of memory mid-clip, reported as one line naming the options that need less.

Running out of GPU memory is the most common way a diffusion backend fails, and torch's message
(a paragraph about allocator settings) does not say what the user can change.  Every GPU backend
wraps its frame stream in :func:`explain_out_of_memory`, which turns
``torch.cuda.OutOfMemoryError`` into a :class:`GpuOutOfMemoryError` (a user error: one line, no
traceback) listing the option changes that lower the peak (:func:`memory_hints`), and gives the
cached GPU memory back however the stream ends.  torch is imported only when the stream runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from faceshot_core.errors import FaceshotUserError
from faceshot_core.torch_support import free_accelerator_memory

__all__ = ["GpuOutOfMemoryError", "explain_out_of_memory", "memory_hints"]


class GpuOutOfMemoryError(FaceshotUserError):
    """The GPU ran out of memory; the settings that need less are named in the message."""


def memory_hints(options: object) -> list[str]:
    """``--option`` changes that lower the peak memory, for the options a backend has.

    Read by name, so any backend whose options have them gets the hints: ``offload`` (keep idle
    models in CPU memory), ``decode_chunk`` (frames per VAE call, halved), ``short_side`` (the
    working size, 128 less, never below 256).
    """
    hints = []
    if getattr(options, "offload", True) is False:
        hints.append("--option offload=true")
    chunk = getattr(options, "decode_chunk", None)
    if isinstance(chunk, int) and chunk > 2:
        hints.append(f"--option decode_chunk={max(1, chunk // 2)}")
    side = getattr(options, "short_side", None)
    if isinstance(side, int) and side > 256:
        hints.append(f"--option short_side={side - 128}")
    return hints


def explain_out_of_memory(
    frames: Iterator[np.ndarray],
    hints: list[str],
    error: type[GpuOutOfMemoryError] = GpuOutOfMemoryError,
) -> Iterator[np.ndarray]:
    """``frames``, with a GPU out-of-memory error turned into one line saying what to change.

    ``error``: the class raised (a backend may raise its own subclass).  Cached GPU memory is
    given back when the stream ends, fails or is closed early.
    """
    import torch

    try:
        yield from frames
    except torch.cuda.OutOfMemoryError as exc:
        raise error(
            "the GPU ran out of memory while generating; try "
            + (", ".join(hints) if hints else "a GPU with more memory")
        ) from exc
    finally:
        free_accelerator_memory()
