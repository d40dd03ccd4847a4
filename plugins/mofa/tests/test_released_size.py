"""Full-size random weights in the released file layout load and generate (``-m heavy``).

Left out by default and in CI: writing ~7.5 GB of random weights and loading them in float32
takes minutes and about 16 GB of memory.  Run it with ``pytest -m heavy plugins/mofa/tests``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from faceshot_mofa.backend import MofaBackend
from faceshot_mofa.testing import write_random_weights
from faceshot_mofa.weights import ADAPTER, CMP, SVD
from safetensors import safe_open

from faceshot_backends import load_backend
from faceshot_backends.testing import sample_request

pytestmark = pytest.mark.heavy


def _shapes(path: Path) -> dict[str, list[int]]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118


def test_released_size_weights_load_and_generate(
    tmp_path: Path, released_layout: Callable[[str], dict[str, list[int]]]
) -> None:
    root = write_random_weights(tmp_path / "weights", tiny=False)
    unet = root / SVD / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    assert _shapes(unet) == released_layout("svd_unet_spatiotemporal")
    adapter = root / ADAPTER / "diffusion_pytorch_model.safetensors"
    assert _shapes(adapter) == released_layout("mofa_ldmk_controlnet")
    saved = torch.load(root / CMP, map_location="cpu", weights_only=True)["state_dict"]
    assert {k: list(v.shape) for k, v in saved.items()} == released_layout("mofa_cmp")

    options = {"weights": str(root), "short_side": 64, "steps": 1}
    with load_backend(MofaBackend, options, device="cpu", dtype="float32") as animator:
        request = sample_request(MofaBackend, 2, options=animator.options)
        frames = list(animator.animate(request))
    assert len(frames) == 2
    assert all(f.dtype == np.uint8 and f.shape == (*request.reference_image.shape,)
               for f in frames)  # fmt: skip
