"""Backend contract 2: the one definition of a backend, readiness, runtimes, loading once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import ValidationError

from faceshot_backends import (
    CONTRACT_VERSION,
    AnimationRequest,
    BackendNotReadyError,
    BackendOptions,
    BaseAnimator,
    BaseBackend,
    Capabilities,
    PerFrameBackend,
    Runtime,
    WorkingSize,
    contract_problems,
    load_backend,
    resolve_runtime,
)
from faceshot_backends.loading import BackendContractError, BackendLoadError
from faceshot_backends.testing import sample_character, sample_request, sample_sequence
from faceshot_backends.windows import coverage, window_spans
from faceshot_core.progress import ProgressEvent
from faceshot_core.torch_support import DeviceError, cuda_available
from faceshot_core.weights import WeightFile, WeightSpec


class HeavyOptions(BackendOptions):
    weights: str | None = None


class HeavyAnimator(BaseAnimator):
    def animate(self, request: AnimationRequest, progress: Any = None) -> Iterator[np.ndarray]:
        yield from (request.reference_image for _ in range(request.num_frames))


class Heavy(BaseBackend):
    """A backend that needs two weight files; counts its loads."""

    name: ClassVar[str] = "heavy"
    description: ClassVar[str] = "test backend with weights"
    Options: ClassVar[type[BackendOptions]] = HeavyOptions
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="clip", max_frames=4)
    loads: ClassVar[int] = 0

    @classmethod
    def weight_specs(cls, options: BackendOptions) -> tuple[WeightSpec, ...]:
        return (WeightSpec(name="heavy", repo_id="faceshot-test/heavy",
                           files=(WeightFile(path="unet/model.safetensors"),
                                  WeightFile(path="vae/vae.bin"))),)  # fmt: skip

    @classmethod
    def load(cls, options: BackendOptions, runtime: Runtime, progress: Any = None) -> HeavyAnimator:
        cls.loads += 1
        return HeavyAnimator(options, runtime)


class GpuOnly(Heavy):
    name: ClassVar[str] = "gpu_only"
    capabilities: ClassVar[Capabilities] = Capabilities(devices=("cuda",), dtypes=("float16",))

    @classmethod
    def weight_specs(cls, options: BackendOptions) -> tuple[WeightSpec, ...]:
        return ()


def test_contract_version_is_pinnable() -> None:
    assert CONTRACT_VERSION[0] == 2 and isinstance(CONTRACT_VERSION[1], int)


def test_contract_problems_name_what_is_missing() -> None:
    assert contract_problems(Heavy) == []

    class NoCaps:
        name = "nocaps"
        description = ""
        Options = BackendOptions

    problems = contract_problems(NoCaps)
    assert any("capabilities" in p for p in problems)
    assert any("load()" in p for p in problems)
    assert contract_problems(object())[0].startswith("expected a backend class")

    class BadName(Heavy):
        name = "two words"

    assert any("short identifier" in p for p in contract_problems(BadName))

    class InstanceLoad(Heavy):
        def load(self, options: Any, runtime: Any, progress: Any = None) -> Any:  # type: ignore[override]
            raise AssertionError

    assert "load() must be a classmethod" in contract_problems(InstanceLoad)


def test_readiness_lists_each_missing_file_and_where(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "model.safetensors").write_bytes(b"x")
    report = Heavy.readiness(Heavy.parse_options({"weights": str(tmp_path)}))
    assert not report.ready
    assert [m.path for m in report.missing] == ["vae/vae.bin"]
    assert any(str(tmp_path) in place for place in report.missing[0].searched)
    assert "missing vae/vae.bin" in report.summary()
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "vae.bin").write_bytes(b"x")
    assert Heavy.readiness(Heavy.parse_options({"weights": str(tmp_path)})).ready


def test_unready_backend_is_refused_before_loading() -> None:
    Heavy.loads = 0
    with pytest.raises(BackendNotReadyError, match=r"'heavy' is not ready: .*missing .*unet/model"):
        load_backend(Heavy, device="cpu")
    assert Heavy.loads == 0


@pytest.mark.skipif(cuda_available(), reason="checks the CPU-only behaviour")
def test_gpu_only_backend_on_a_cpu_is_a_clear_error_before_loading() -> None:
    GpuOnly.loads = 0
    with pytest.raises(DeviceError, match="'gpu_only' needs a CUDA GPU"):
        load_backend(GpuOnly)
    with pytest.raises(DeviceError, match="'gpu_only' cannot run on cpu"):
        load_backend(GpuOnly, device="cpu")
    assert GpuOnly.loads == 0
    assert "needs a CUDA GPU" in GpuOnly.readiness(GpuOnly.default_options()).summary()


def test_device_and_dtype_resolution() -> None:
    runtime = resolve_runtime(Heavy, device="auto", dtype="auto", seed=7)
    assert (runtime.device, runtime.dtype, runtime.seed) == ("cpu", "float32", 7)
    with pytest.raises(DeviceError, match="dtype float16 is not supported"):
        resolve_runtime(Heavy, device="cpu", dtype="float16")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_runtime(Heavy, device="tpu")
    with pytest.raises(ValidationError):
        Runtime(device="auto")  # a runtime is always resolved


def test_runtime_generators_replay() -> None:
    rt = Runtime(seed=3)
    assert rt.rng().integers(1 << 30) == rt.rng().integers(1 << 30)
    a, b = rt.generator(), rt.generator()
    import torch

    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_load_errors_are_one_line_and_name_the_backend() -> None:
    class Crashes(PerFrameBackend):
        name: ClassVar[str] = "crashes"
        description: ClassVar[str] = ""

        def setup(self, progress: Any = None) -> None:
            raise OSError("weights are corrupt")

    with pytest.raises(BackendLoadError, match="'crashes' failed to load: OSError: weights are"):
        load_backend(Crashes)

    class ReturnsNothing(BaseBackend):
        name: ClassVar[str] = "returns_nothing"

        @classmethod
        def load(cls, options: Any, runtime: Any, progress: Any = None) -> Any:
            return None

    with pytest.raises(BackendContractError, match="returned None"):
        load_backend(ReturnsNothing)
    with pytest.raises(BackendContractError, match=r"not a faceshot backend: .*capabilities"):
        load_backend(type("Bare", (), {"name": "bare", "description": ""}))


def test_capabilities_are_consistent() -> None:
    with pytest.raises(ValidationError, match="window and stride"):
        Capabilities(temporal="windowed")
    with pytest.raises(ValidationError, match="leaves gaps"):
        Capabilities(temporal="windowed", window=16, stride=20)
    with pytest.raises(ValidationError, match="windowed"):
        Capabilities(window=16, stride=4)
    with pytest.raises(ValidationError, match="devices"):
        Capabilities(devices=("tpu",))
    windowed = Capabilities(temporal="windowed", window=25, stride=12, max_frames=25)
    assert windowed.frame_limit() is None  # windowed backends take any length
    assert Capabilities(temporal="clip", max_frames=16).frame_limit() == 16
    assert "window 25, stride 12" in windowed.describe()
    with pytest.raises(ValidationError, match="both width and height"):
        WorkingSize(width=512)


@pytest.mark.parametrize(("frames", "window", "stride"),
                         [(1, 25, 12), (25, 25, 12), (26, 25, 12), (100, 25, 12), (61, 16, 12),
                          (17, 16, 16)])  # fmt: skip
def test_window_spans_cover_every_frame_without_wrapping(
    frames: int, window: int, stride: int
) -> None:
    spans = window_spans(frames, window, stride)
    assert spans[0][0] == 0 and spans[-1][1] == frames
    assert all(0 <= a < b <= frames and b - a == min(window, frames) for a, b in spans)
    assert all(a2 - a1 <= stride for (a1, _), (a2, _) in itertools.pairwise(spans))
    assert coverage(spans, frames).min() >= 1
    with pytest.raises(ValueError):
        window_spans(10, 4, 5)


def test_request_validation() -> None:
    image, points = sample_character()
    seq = sample_sequence(points, 3)
    ok = AnimationRequest(reference_image=image, reference_landmarks=points, sequence=seq, fps=25)
    assert ok.size == (160, 120) and ok.num_frames == 3 and not ok.interpolated.any()
    with pytest.raises(ValidationError, match="RGB uint8"):
        AnimationRequest(reference_image=image.astype(np.float32), reference_landmarks=points,
                         sequence=seq, fps=25)  # fmt: skip
    with pytest.raises(ValidationError, match=r"\[M, 68, 2\]"):
        AnimationRequest(reference_image=image, reference_landmarks=points, sequence=seq[:, :5],
                         fps=25)  # fmt: skip
    with pytest.raises(ValidationError, match="2 flags for 3 frames"):
        AnimationRequest(reference_image=image, reference_landmarks=points, sequence=seq,
                         fps=25, interpolated=np.zeros(2, bool))  # fmt: skip
    with pytest.raises(ValidationError, match="greater than 0"):
        AnimationRequest(reference_image=image, reference_landmarks=points, sequence=seq, fps=0)


def test_sample_sequence_blinks_and_opens_the_mouth() -> None:
    """The conformance data carry real expressions (frame 0 is the rest pose)."""
    _, points = sample_character()
    seq = sample_sequence(points, 9)
    np.testing.assert_array_equal(seq[0], points)
    eye_gap = np.linalg.norm(seq[:, 41] - seq[:, 37], axis=-1)
    mouth_gap = np.linalg.norm(seq[:, 66] - seq[:, 62], axis=-1)
    assert eye_gap[4] < 0.2 * eye_gap[0]
    assert mouth_gap[4] > mouth_gap[0] + 5


def test_one_loaded_animator_serves_many_clips_and_closes_once() -> None:
    class Counting(PerFrameBackend):
        name: ClassVar[str] = "counting"
        description: ClassVar[str] = ""
        setups: ClassVar[int] = 0
        releases: ClassVar[int] = 0

        def setup(self, progress: Any = None) -> None:
            type(self).setups += 1

        def render(self, state: Any, points: np.ndarray) -> np.ndarray:
            return np.zeros((10, 10, 3), np.uint8)

        def release(self) -> None:
            type(self).releases += 1

    events: list[ProgressEvent] = []
    with load_backend(Counting, progress=events.append) as animator:
        for frames in (3, 5):
            out = list(animator.animate(sample_request(Counting, frames), events.append))
            assert len(out) == frames and out[0].shape == (120, 160, 3)  # resized to the request
    animator.close()
    assert (Counting.setups, Counting.releases) == (1, 1)
    assert [e.stage for e in events if e.stage == "loading"] == ["loading", "loading"]
    assert [e.done for e in events if e.stage == "animating"] == [1, 2, 3, 1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match="closed"):
        list(animator.animate(sample_request(Counting, 2)))
