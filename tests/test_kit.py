"""The conformance kit as a plugin author uses it: a separate pytest run over their test file.

Runs pytest in a subprocess on a generated test module, so that the kit is exercised exactly as
in a plugin's own suite (collection, class-scoped loading, markers from faceshot's pytest
plugin), and counts how often each backend is loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

AUTHOR_TESTS = """
import os
from typing import ClassVar

import numpy as np

from faceshot_backends import (BaseAnimator, BaseBackend, Capabilities, PerFrameBackend,
                               WorkingSize, window_spans)
from faceshot_backends.testing import BackendConformance
from faceshot_core.progress import report


def _note(name):
    with open(os.environ["KIT_LOADS"], "a") as f:
        f.write(name + "\\n")


class Still(PerFrameBackend):
    name: ClassVar[str] = "still"
    description: ClassVar[str] = "the reference, every frame"

    def setup(self, progress=None):
        _note(self.name)

    def prepare(self, request):
        return request.reference_image

    def render(self, image, points):
        return image


class ClipAnimator(BaseAnimator):
    def animate(self, request, progress=None):
        self.check_open()
        whole = [(0, request.num_frames)]
        spans = window_spans(request.num_frames, 4, 2) if self.windowed else whole
        covered = np.zeros(request.num_frames, int)
        for i, (a, b) in enumerate(spans):
            covered[a:b] += 1
            report(progress, "denoising", i + 1, len(spans), "windows")
        assert covered.min() >= 1
        noise = request.runtime.rng().integers(0, 3, request.reference_image.shape, dtype=np.uint8)
        for _ in range(request.num_frames):
            yield request.reference_image // 2 + noise


class Clip(BaseBackend):
    name: ClassVar[str] = "clip"
    description: ClassVar[str] = "whole-clip generator at a fixed working size"
    capabilities: ClassVar[Capabilities] = Capabilities(
        temporal="clip", max_frames=8, working_size=WorkingSize(width=64, height=64))

    @classmethod
    def load(cls, options, runtime, progress=None):
        _note(cls.name)
        animator = ClipAnimator(options, runtime)
        animator.windowed = cls.capabilities.temporal == "windowed"
        return animator


class Windowed(Clip):
    name: ClassVar[str] = "windowed"
    capabilities: ClassVar[Capabilities] = Capabilities(
        temporal="windowed", window=4, stride=2,
        working_size=WorkingSize(short_side=48, multiple=16))


class GpuOnly(Clip):
    name: ClassVar[str] = "gpu_only"
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="clip", devices=("cuda",),
                                                        dtypes=("float16",))


class TestStill(BackendConformance):
    backend_class = Still
    reference_tolerance = 0.0


class TestClip(BackendConformance):
    backend_class = Clip


class TestWindowed(BackendConformance):
    backend_class = Windowed


class TestGpuOnly(BackendConformance):
    backend_class = GpuOnly
"""


def test_the_kit_loads_once_per_class_and_covers_every_kind_of_backend(tmp_path: Path) -> None:
    (tmp_path / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    loads = tmp_path / "loads.txt"
    env = {**os.environ, "KIT_LOADS": str(loads), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers",
         "-rs", "test_author.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert sorted(loads.read_text().split()) == ["clip", "still", "windowed"], out  # once each
    assert "needs a CUDA GPU" in out  # the GPU-only backend skips cleanly, with the reason
    deselected = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers",
         "-m", "not gpu", "--collect-only", "test_author.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "TestGpuOnly" not in deselected.stdout and deselected.returncode == 0
