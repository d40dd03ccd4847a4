"""Fixtures shared by every test folder of the repository (the core's and the plugins')."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

#: ``../shared/docs/checkpoint-layouts`` beside the repository: released files' key/shape lists.
LAYOUTS = Path(__file__).resolve().parent.parent / "shared" / "docs" / "checkpoint-layouts"


@pytest.fixture
def released_layout() -> Callable[[str], dict[str, list[int]]]:
    """``released_layout(name)``: key -> shape of a released checkpoint (skips when absent).

    Names are the files' stems: ``mofa_ldmk_controlnet``, ``mofa_cmp``,
    ``svd_unet_spatiotemporal``, ``aniportrait_pose_guider``, ``aniportrait_reference_unet``,
    ``aniportrait_denoising_unet``, ``aniportrait_denoising_unet_no_motion_module``,
    ``aniportrait_motion_module``.
    """

    def load(name: str) -> dict[str, list[int]]:
        path = LAYOUTS / f"{name}.json.gz"
        if not path.is_file():
            pytest.skip(f"{path} is not present")
        with gzip.open(path) as fh:
            return json.load(fh)  # type: ignore[no-any-return]

    return load
