"""CPU stand-ins for the CUDA-only parts of upstream's MOFA-Video code (parity check).

Imported by ``upstream_side.py`` in the upstream environment.  Nothing here is upstream code:

* ``SplatSumCPU`` replaces upstream's ``softsplat_func`` (the CuPy kernel ``softsplat_out``);
  upstream's own ``softsplat(..., strMode='avg')`` wrapper, ones channel and ``+ 1e-7``
  normalisation included, still runs unchanged around it.  Written from the kernel, independently
  of ``faceshot_mofa.splatting``, so that the comparison is not circular;
* ``install_cupy_stub`` lets ``models/softsplat.py`` import without CuPy;
* ``cpu_shims`` makes ``.cuda()`` a no-op and maps checkpoints to the CPU while CMP is built;
* ``function_from_file`` compiles one top-level function of an upstream script that cannot be
  imported as a whole.
"""

from __future__ import annotations

import ast
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn


class SplatSumCPU:
    """CPU replacement for upstream's ``softsplat_func`` (the CuPy kernel ``softsplat_out``).

    The kernel, for every input pixel (x, y) of every channel: target ``(x + u, y + v)``; skip if
    not finite; ``x0 = floor``, ``y0 = floor``; add ``value * weight`` to the four neighbours that
    lie inside the image, with ``NW = (x0+1-fx)(y0+1-fy)``, ``NE = (fx-x0)(y0+1-fy)``,
    ``SW = (x0+1-fx)(fy-y0)``, ``SE = (fx-x0)(fy-y0)`` computed in float32.  Written here with
    ``index_add_`` (float32 accumulation, like the kernel's ``atomicAdd``; only the order of the
    additions differs).  Only ``apply`` is provided: the parity check needs no gradients.
    """

    @staticmethod
    def apply(ten_in: torch.Tensor, ten_flow: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ten_in.shape
        assert ten_flow.shape == (n, 2, h, w)
        ten_in = ten_in.float()
        ten_flow = ten_flow.float()
        rows = torch.arange(h, dtype=torch.float32)
        ys, xs = torch.meshgrid(rows, torch.arange(w, dtype=torch.float32), indexing="ij")
        out = ten_in.new_zeros(n, c, h * w)
        for b in range(n):
            fx = xs + ten_flow[b, 0]
            fy = ys + ten_flow[b, 1]
            finite = torch.isfinite(fx) & torch.isfinite(fy)
            x0 = torch.floor(torch.where(finite, fx, torch.zeros_like(fx)))
            y0 = torch.floor(torch.where(finite, fy, torch.zeros_like(fy)))
            corners = (
                (x0, y0, (x0 + 1 - fx) * (y0 + 1 - fy)),
                (x0 + 1, y0, (fx - x0) * (y0 + 1 - fy)),
                (x0, y0 + 1, (x0 + 1 - fx) * (fy - y0)),
                (x0 + 1, y0 + 1, (fx - x0) * (fy - y0)),
            )
            values = ten_in[b].reshape(c, h * w)
            for cx, cy, weight in corners:
                inside = finite & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
                keep = inside.reshape(-1)
                index = (cy * w + cx).reshape(-1)[keep].long()
                out[b].index_add_(1, index, values[:, keep] * weight.reshape(-1)[keep])
        return out.reshape(n, c, h, w)


def install_cupy_stub() -> None:
    """Let ``models/softsplat.py`` import without CuPy (it only decorates with ``memoize``)."""
    stub = types.ModuleType("cupy")
    stub.memoize = lambda **_: lambda f: f  # type: ignore[attr-defined]
    sys.modules.setdefault("cupy", stub)


@contextmanager
def cpu_shims() -> Iterator[None]:
    """While CMP is built: ``.cuda()`` is a no-op and checkpoints are mapped to the CPU."""
    saved_tensor_cuda = torch.Tensor.cuda
    saved_module_cuda = nn.Module.cuda
    saved_sync = torch.cuda.synchronize
    saved_load = torch.load

    def load_on_cpu(f: Any, map_location: Any = None, **kwargs: Any) -> Any:
        return saved_load(f, map_location="cpu", **kwargs)

    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.synchronize = lambda *a, **k: None
    torch.load = load_on_cpu  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.Tensor.cuda = saved_tensor_cuda  # type: ignore[method-assign]
        nn.Module.cuda = saved_module_cuda  # type: ignore[method-assign]
        torch.cuda.synchronize = saved_sync
        torch.load = saved_load


def function_from_file(path: Path, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Execute one top-level function of an upstream script without importing the script.

    ``mofa_keypoint.py`` imports accelerate, gradio-era helpers and checks the diffusers
    version at import time; only ``sample_inputs_face`` is needed, so its definition alone is
    compiled from upstream's file and run in ``namespace``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            module = ast.Module(body=[node], type_ignores=[])
            exec(compile(module, str(path), "exec"), namespace)
            return namespace[name]
    raise LookupError(f"{name} not found in {path}")
