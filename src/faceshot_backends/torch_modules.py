"""Placing and compiling the models of a diffusion backend (shared by the GPU plugins).

A diffusion backend holds several large models of which only one or two run at a time (the
image encoder once per clip, the UNet for every step, the VAE at the end).  With offloading,
:func:`offload_except` keeps the idle ones in CPU memory and brings the ones about to run to the
GPU.  :func:`compile_blocks` hands a UNet's blocks to ``torch.compile`` one by one: the
backends' own forward passes call the blocks individually (to add residuals or features between
them), so compiling a model's ``forward`` would compile nothing that runs.  torch is never
imported here: the functions only call methods of the modules they are given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faceshot_core.errors import MissingDependencyError

__all__ = ["compile_blocks", "offload_except"]


def offload_except(modules: Iterable[Any], keep: Iterable[Any], device: Any) -> None:
    """Move the modules of ``keep`` to ``device`` and every other one of ``modules`` to the CPU.

    ``None`` entries (released models) are skipped; a module already in place costs nothing.
    """
    wanted = {id(m) for m in keep}
    for module in modules:
        if module is not None:
            module.to(device if id(module) in wanted else "cpu")


def compile_blocks(*models: Any) -> None:
    """``torch.compile`` the down, mid and up blocks of each of ``models`` in place."""
    for model in models:
        for part in (*model.down_blocks, model.mid_block, *getattr(model, "up_blocks", ())):
            if not hasattr(part, "compile"):
                raise MissingDependencyError("compile=true needs PyTorch 2.2 or newer")
            part.compile()
