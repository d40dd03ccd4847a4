"""The backend contract: requests are validated, readiness names what is missing and where."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from pydantic import ValidationError

from faceshot_backends.contract import (
    AnimationRequest,
    BackendNotReadyError,
    BackendOptions,
    BaseBackend,
    Requirements,
    WeightFile,
)
from faceshot_backends.testing import sample_character, sample_sequence


class HeavyOptions(BackendOptions):
    weights_dir: str | None = None


class Heavy(BaseBackend):
    """A backend that needs weight files (and, in one variant, a GPU)."""

    name: ClassVar[str] = "heavy"
    Options: ClassVar[type[BackendOptions]] = HeavyOptions
    requirements: ClassVar[Requirements] = Requirements(
        weights=(WeightFile(path="unet/model.safetensors"), WeightFile(path="vae/vae.bin")),
        max_frames=4,
    )

    def animate(self, request: AnimationRequest, progress: object = None) -> Iterator[np.ndarray]:
        yield from (request.reference_image for _ in range(request.num_frames))


class NeedsGpu(Heavy):
    name: ClassVar[str] = "needs_gpu"
    requirements: ClassVar[Requirements] = Requirements(gpu=True)


def test_readiness_lists_each_missing_file_and_where(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "model.safetensors").write_bytes(b"x")
    report = Heavy().check(Heavy.parse_options({"weights_dir": str(tmp_path)}))
    assert not report.ready
    assert [(m.path, m.searched) for m in report.missing] == [("vae/vae.bin", (str(tmp_path),))]
    assert f"missing vae/vae.bin (looked in {tmp_path})" in report.summary()
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "vae.bin").write_bytes(b"x")
    assert Heavy().check(Heavy.parse_options({"weights_dir": str(tmp_path)})).ready


def test_readiness_without_a_weights_folder() -> None:
    report = Heavy().check()
    assert not report.ready and "no weights folder given" in report.summary()


def test_gpu_requirement_is_reported_on_a_cpu_machine() -> None:
    from faceshot_backends.contract import cuda_available

    report = NeedsGpu().check()
    assert report.ready == cuda_available()
    if not report.ready:
        assert "CUDA GPU" in report.summary()


def test_run_refuses_an_unready_backend_and_frame_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceshot.runner import _check_frame_limits
    from faceshot_backends.contract import BackendOptionError
    from faceshot_core import plugins

    registry = plugins.BackendRegistry()
    registry.entries["heavy"] = plugins.BackendEntry("heavy", Heavy, plugins.PluginInfo("test"))
    monkeypatch.setattr("faceshot.runner.backend_registry", lambda: registry)
    import faceshot

    with pytest.raises(BackendNotReadyError, match=r"'heavy' is not ready: .*missing unet/model"):
        faceshot.run("ref.png", "drive.mp4", output=tmp_path / "o.mp4", backend="heavy")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BackendOptionError, match=r"at most 4 frames .*\(--max-frames\)"):
        _check_frame_limits("heavy", 10, 1, 4)


def test_request_validation() -> None:
    image, points = sample_character()
    seq = sample_sequence(points, 3)
    ok = AnimationRequest(reference_image=image, reference_landmarks=points, sequence=seq, fps=25)
    assert ok.size == (160, 120) and ok.num_frames == 3
    with pytest.raises(ValidationError, match="RGB uint8"):
        AnimationRequest(reference_image=image.astype(np.float32), reference_landmarks=points,
                         sequence=seq, fps=25)  # fmt: skip
    with pytest.raises(ValidationError, match=r"\[M, 68, 2\]"):
        AnimationRequest(reference_image=image, reference_landmarks=points, sequence=seq[:, :5],
                         fps=25)  # fmt: skip
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
