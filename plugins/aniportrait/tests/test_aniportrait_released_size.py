"""Full-size random weights in the released file layout load and generate (``-m heavy``).

Left out by default and in CI: writing ~9 GB of random ``.pth`` files and loading them in
float32 takes minutes and about 12 GB of memory.  Run it with
``pytest -m heavy plugins/aniportrait/tests``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from faceshot_aniportrait.backend import AniPortraitBackend
from faceshot_aniportrait.checkpoints import RELEASED_FILES
from faceshot_aniportrait.configs import CONFIG_FILE
from faceshot_aniportrait.testing import write_random_weights

from faceshot_backends import load_backend
from faceshot_backends.testing import sample_request

pytestmark = pytest.mark.heavy

#: Each released file and the name of its key/shape list.
LAYOUT_NAMES = {
    "denoising_unet": "aniportrait_denoising_unet_no_motion_module",
    "motion_module": "aniportrait_motion_module",
    "reference_unet": "aniportrait_reference_unet",
    "pose_guider": "aniportrait_pose_guider",
}


def test_released_size_weights_load_and_generate(
    tmp_path: Path, released_layout: Callable[[str], dict[str, list[int]]]
) -> None:
    root = write_random_weights(tmp_path / "weights", tiny=False)
    assert not (root / CONFIG_FILE).exists()  # the release is built from the code defaults
    for part, name in LAYOUT_NAMES.items():
        saved = torch.load(root / RELEASED_FILES[part], map_location="cpu", weights_only=True,
                           mmap=True)  # fmt: skip
        assert {k: list(v.shape) for k, v in saved.items()} == released_layout(name), part
        del saved

    options = {"weights": str(root), "short_side": 64, "steps": 1}
    with load_backend(AniPortraitBackend, options, device="cpu", dtype="float32") as animator:
        request = sample_request(AniPortraitBackend, 2, options=animator.options)
        frames = list(animator.animate(request))
    assert len(frames) == 2
    assert all(f.dtype == np.uint8 and f.shape == request.reference_image.shape for f in frames)
