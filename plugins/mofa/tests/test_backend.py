"""The ``mofa`` backend end to end on tiny random weights written in the released layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from faceshot_mofa.backend import MofaBackend, MofaOptions
from faceshot_mofa.testing import write_random_weights
from faceshot_mofa.weights import ENV_VAR, weight_spec

from faceshot.cli.main import main
from faceshot_backends import BackendOptionError, load_backend
from faceshot_backends.registry import backend_registry
from faceshot_backends.testing import BackendConformance, sample_request
from faceshot_core.images import save_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.progress import ProgressEvent
from faceshot_core.sample_data import chelsea, chelsea_landmarks, chelsea_landmarks_path
from faceshot_core.synthetic import HeadMotion, expression_sequence
from faceshot_core.video import probe_video

FAST = {"short_side": 64, "steps": 2, "decode_chunk": 5}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("mofa-weights"), tiny=True)


def test_registered_through_the_entry_point() -> None:
    entry = next(e for e in backend_registry() if e.name == "mofa")
    assert entry.cls is MofaBackend


def test_readiness_names_every_missing_file_and_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # file names unwrapped
    readiness = MofaBackend.readiness(MofaBackend.parse_options({"weights": str(tmp_path)}))
    assert not readiness.ready
    assert {m.path for m in readiness.missing} == {f.path for f in weight_spec().files}
    assert main(["backends", "-v"]) == 0
    out = capsys.readouterr().out
    assert "mofa" in out and "ckpt_iter_42000.pth.tar" in out and ENV_VAR in out


def test_options_are_checked() -> None:
    with pytest.raises(BackendOptionError, match="multiple of 64"):
        MofaBackend.parse_options({"short_side": 500})
    with pytest.raises(BackendOptionError, match="min_guidance"):
        MofaBackend.parse_options({"min_guidance": 4.0, "max_guidance": 3.0})
    options = MofaBackend.parse_options({"short_side": 128})
    assert isinstance(options, MofaOptions)
    assert MofaBackend.working_size(options).short_side == 128  # type: ignore[union-attr]


def test_weights_are_found_through_the_environment_variable(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tiny_weights))
    assert MofaBackend.readiness(MofaBackend.default_options(), "cpu").ready


@pytest.fixture(scope="module")
def animator(tiny_weights: Path) -> Iterator[Any]:
    options = {**FAST, "weights": str(tiny_weights)}
    with load_backend(MofaBackend, options, device="cpu", dtype="float32") as loaded:
        yield loaded


def test_a_clip_longer_than_two_windows_covers_every_frame(animator: Any) -> None:
    request = sample_request(MofaBackend, 40, options=animator.options)
    assert request.size == (128, 64)  # 160x120 at short side 64, padded to multiples of 64
    events: list[ProgressEvent] = []
    frames = list(animator.animate(request, progress=events.append))
    assert len(frames) == 40
    assert all(f.shape == (64, 128, 3) and f.dtype == np.uint8 for f in frames)
    denoising = [e for e in events if e.stage == "denoising"]
    assert denoising[-1].done == denoising[-1].total == 2 * 3  # 2 steps x 3 windows
    assert [e.done for e in events if e.stage == "decoding"] == list(range(1, 41))
    assert len({f.tobytes() for f in frames}) > 1


def test_same_seed_same_frames_other_seed_other_frames(animator: Any) -> None:
    request = sample_request(MofaBackend, 3, options=animator.options)
    first = list(animator.animate(request))
    again = list(animator.animate(request))
    other = list(animator.animate(request.model_copy(update={
        "runtime": request.runtime.model_copy(update={"seed": 7})})))  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_the_landmarks_drive_the_frames(animator: Any) -> None:
    request = sample_request(MofaBackend, 4, options=animator.options)
    moved = request.sequence.copy()
    moved[1:] += np.array([3.0, -2.0], dtype=np.float32)  # the face moves; frame 0 stays
    still = list(animator.animate(request))
    shifted = list(animator.animate(request.model_copy(update={"sequence": moved})))
    assert all(not np.array_equal(a, b) for a, b in zip(still[1:], shifted[1:], strict=True))


class TestMofaConformance(BackendConformance):
    """The kit, on tiny random weights found through ``$FACESHOT_MOFA_WEIGHTS``."""

    backend_class = MofaBackend
    options: ClassVar[dict[str, Any]] = FAST
    device = "cpu"
    dtype = "float32"

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _weights(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        folder = write_random_weights(tmp_path_factory.mktemp("kit-weights"), tiny=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(ENV_VAR, str(folder))
            yield


def test_cli_run_on_cpu_with_tiny_weights(tiny_weights: Path, tmp_path: Path) -> None:
    image = chelsea()
    face = chelsea_landmarks()
    motion = HeadMotion(shift_x=6.0, roll_degrees=5.0, period=12)
    points = expression_sequence(face.points, 12, motion=motion)
    driving = LandmarkSequence(points, face.image_size, 25.0)
    save_landmarks(tmp_path / "drive.npz", driving)
    reference = save_image(tmp_path / "cat.png", image)
    out = tmp_path / "cat.mp4"
    code = main(["run", "-r", str(reference), "-l", str(chelsea_landmarks_path()),
                 "-d", str(tmp_path / "drive.npz"), "-o", str(out), "-b", "mofa",
                 "--device", "cpu", "--option", f"weights={tiny_weights}",
                 *[a for k, v in FAST.items() for a in ("--option", f"{k}={v}")],
                 "-q"])  # fmt: skip
    assert code == 0
    info = probe_video(out)
    assert info.frame_count == 12
    h, w = image.shape[:2]
    assert (info.width, info.height) == (w + w % 2, h + h % 2)  # back at the reference size


def test_gpu_out_of_memory_is_one_line_with_what_to_change() -> None:
    import torch
    from faceshot_mofa.backend import MofaAnimator, MofaOutOfMemoryError

    from faceshot_backends import Runtime

    class Pipeline:  # stands in for the loaded models: a frame, then the GPU is full
        def generate(self, *args: Any, **kwargs: Any) -> Iterator[np.ndarray]:
            yield np.zeros((64, 64, 3), np.uint8)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    animator = MofaAnimator(MofaBackend.parse_options({}), Runtime(), Pipeline())
    stream = animator.animate(sample_request(MofaBackend, 3, options=animator.options))
    next(stream)
    with pytest.raises(MofaOutOfMemoryError, match=r"offload=true.*decode_chunk=4.*short_side=384"):
        next(stream)
