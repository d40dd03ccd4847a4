"""The ``aniportrait`` backend end to end on tiny random weights written in the released layouts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from faceshot_aniportrait.backend import (
    AniPortraitBackend,
    AniPortraitOptions,
    AniPortraitOutOfMemoryError,
)
from faceshot_aniportrait.testing import write_random_weights
from faceshot_aniportrait.weights import ENV_VAR, encoder_spec, find_all, release_spec, vae_spec

from faceshot.cli.main import main
from faceshot_backends import BackendOptionError, load_backend
from faceshot_backends.gpu_faults import explain_out_of_memory, memory_hints
from faceshot_backends.registry import backend_registry
from faceshot_backends.testing import BackendConformance, sample_request
from faceshot_core.images import save_image
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.landmarks import LandmarkSequence
from faceshot_core.progress import ProgressEvent
from faceshot_core.sample_data import chelsea, chelsea_landmarks, chelsea_landmarks_path
from faceshot_core.synthetic import HeadMotion, expression_sequence
from faceshot_core.video import probe_video

FAST = {"short_side": 64, "steps": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The tiny models' ops are too small for threads to pay; with two threads on two busy
    cores they stall on each other (a 40-frame clip: 3 s on one thread, 20 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("aniportrait-weights"), tiny=True)


def test_registered_through_the_entry_point() -> None:
    entry = next(e for e in backend_registry() if e.name == "aniportrait")
    assert entry.cls is AniPortraitBackend


def test_readiness_names_every_missing_file_and_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # file names unwrapped
    readiness = AniPortraitBackend.readiness(
        AniPortraitBackend.parse_options({"weights": str(tmp_path)})
    )
    assert not readiness.ready
    wanted = [f.path for spec in (release_spec(), vae_spec(), encoder_spec()) for f in spec.files]
    assert sorted(m.path for m in readiness.missing) == sorted(wanted)
    assert main(["backends", "-v"]) == 0
    out = capsys.readouterr().out
    assert "aniportrait" in out and "motion_module.pth" in out and ENV_VAR in out


def test_options_are_checked() -> None:
    with pytest.raises(BackendOptionError, match="multiple of 64"):
        AniPortraitBackend.parse_options({"short_side": 500})
    with pytest.raises(BackendOptionError, match="guidance"):
        AniPortraitBackend.parse_options({"guidance": 0.5})
    options = AniPortraitBackend.parse_options({"short_side": 128, "decode_chunk": 4})
    assert isinstance(options, AniPortraitOptions)
    assert AniPortraitBackend.working_size(options).short_side == 128  # type: ignore[union-attr]


def test_weights_are_found_through_the_environment_variable(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tiny_weights))
    assert AniPortraitBackend.readiness(AniPortraitBackend.default_options(), "cpu").ready
    names = [s.name for s in AniPortraitBackend.weight_specs(AniPortraitBackend.default_options())]
    assert names == ["aniportrait", "sd-vae-ft-mse", "sd-image-variations-encoder"]


def test_the_first_place_holding_a_layout_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release in the weights folder beats a single file in $FACESHOT_ANIPORTRAIT_WEIGHTS,
    and a single file in the weights folder beats the release there."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    release, single = tmp_path / "release", tmp_path / "single"
    for path in ("denoising_unet.pth", "reference_unet.pth", "motion_module.pth",
                 "pose_guider.pth", "sd-vae-ft-mse/config.json",
                 "sd-vae-ft-mse/diffusion_pytorch_model.bin", "image_encoder/config.json",
                 "image_encoder/pytorch_model.bin"):  # fmt: skip
        (release / path).parent.mkdir(parents=True, exist_ok=True)
        (release / path).touch()
    single.mkdir()
    (single / "aniportrait.fp16.safetensors").touch()
    (single / "config.json").touch()
    monkeypatch.setenv(ENV_VAR, str(single))
    chosen = find_all(release)
    assert [loc.spec.name for loc in chosen] == ["aniportrait", "sd-vae-ft-mse",
                                                 "sd-image-variations-encoder"]  # fmt: skip
    assert all(loc.ready and loc.root in (release, release / "image_encoder") for loc in chosen)
    assert [loc.spec.name for loc in find_all(None)] == ["aniportrait-diffusers"]
    (release / "aniportrait.safetensors").touch()
    (release / "config.json").touch()
    (only,) = find_all(release)
    assert only.spec.name == "aniportrait-diffusers" and only.root == release


@pytest.fixture(scope="module")
def animator(tiny_weights: Path) -> Iterator[Any]:
    options = {**FAST, "weights": str(tiny_weights)}
    with load_backend(AniPortraitBackend, options, device="cpu", dtype="float32") as loaded:
        yield loaded


def test_a_clip_longer_than_two_windows_covers_every_frame(animator: Any) -> None:
    request = sample_request(AniPortraitBackend, 40, options=animator.options)
    assert request.size == (128, 64)  # 160x120 at short side 64, padded to multiples of 64
    events: list[ProgressEvent] = []
    frames = list(animator.animate(request, progress=events.append))
    assert len(frames) == 40
    assert all(f.shape == (64, 128, 3) and f.dtype == np.uint8 for f in frames)
    denoising = [e for e in events if e.stage == "denoising"]
    assert [e.done for e in denoising] == list(range(1, 2 * 3 + 1))  # 2 steps x 3 windows
    assert denoising[-1].total == 6
    assert [e.done for e in events if e.stage == "decoding"] == list(range(1, 41))
    assert len({f.tobytes() for f in frames}) > 1


def test_same_seed_same_frames_other_seed_other_frames(animator: Any) -> None:
    request = sample_request(AniPortraitBackend, 3, options=animator.options)
    first = list(animator.animate(request))
    again = list(animator.animate(request))
    other = list(animator.animate(request.model_copy(update={
        "runtime": request.runtime.model_copy(update={"seed": 7})})))  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_the_landmarks_drive_the_frames(animator: Any) -> None:
    request = sample_request(AniPortraitBackend, 4, options=animator.options)
    moved = request.sequence.copy()
    moved[1:] += np.array([3.0, -2.0], dtype=np.float32)  # the face moves; frame 0 stays
    still = list(animator.animate(request))
    shifted = list(animator.animate(request.model_copy(update={"sequence": moved})))
    assert all(not np.array_equal(a, b) for a, b in zip(still[1:], shifted[1:], strict=True))


def test_the_other_settings_run_and_change_the_frames(tiny_weights: Path, animator: Any) -> None:
    """No guidance (one branch: half the work), running BatchNorm statistics, reference tokens
    kept at full precision, four frames per VAE call: frames of their own, each reproducible."""
    options = {**FAST, "weights": str(tiny_weights), "guidance": 1.0, "decode_chunk": 4,
               "batch_statistics": False, "reference_float16": False}  # fmt: skip
    request = sample_request(AniPortraitBackend, 5, options=animator.options)
    events: list[ProgressEvent] = []
    with load_backend(AniPortraitBackend, options, device="cpu", dtype="float32") as other:
        frames = list(other.animate(request, progress=events.append))
        again = list(other.animate(request))
    assert [e.done for e in events if e.stage == "decoding"] == [1, 2, 3, 4, 5]
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    usual = list(animator.animate(request))
    assert all(not np.array_equal(a, b) for a, b in zip(frames, usual, strict=True))


def test_the_single_file_gives_the_same_networks(
    tmp_path: Path, tiny_weights: Path, animator: Any
) -> None:
    """``aniportrait.safetensors`` + ``config.json`` (same random networks as the release
    layout: same seed) is found alone, loads, and gives the same frames."""
    folder = write_random_weights(tmp_path / "single", tiny=True, layout="single_file")
    options = AniPortraitBackend.parse_options({**FAST, "weights": str(folder)})
    assert [s.name for s in AniPortraitBackend.weight_specs(options)] == ["aniportrait-diffusers"]
    request = sample_request(AniPortraitBackend, 3, options=animator.options)
    with load_backend(AniPortraitBackend, options, device="cpu", dtype="float32") as single:
        from_single = list(single.animate(request))
    from_release = list(animator.animate(request))
    assert all(np.array_equal(a, b) for a, b in zip(from_single, from_release, strict=True))


class TestAniPortraitConformance(BackendConformance):
    """The kit, on tiny random weights found through ``$FACESHOT_ANIPORTRAIT_WEIGHTS``."""

    backend_class = AniPortraitBackend
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
                 "-d", str(tmp_path / "drive.npz"), "-o", str(out), "-b", "aniportrait",
                 "--device", "cpu", "--option", f"weights={tiny_weights}",
                 *[a for k, v in FAST.items() for a in ("--option", f"{k}={v}")],
                 "-q"])  # fmt: skip
    assert code == 0
    info = probe_video(out)
    assert info.frame_count == 12
    h, w = image.shape[:2]
    assert (info.width, info.height) == (w + w % 2, h + h % 2)  # back at the reference size


def test_gpu_out_of_memory_is_one_line_with_what_to_change() -> None:
    def frames() -> Iterator[np.ndarray]:
        yield np.zeros((64, 64, 3), np.uint8)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    options = AniPortraitBackend.parse_options({})
    stream = explain_out_of_memory(frames(), memory_hints(options), AniPortraitOutOfMemoryError)
    next(stream)
    with pytest.raises(AniPortraitOutOfMemoryError, match=r"^[^\n]*offload=true, [^\n]*=384$"):
        next(stream)
    assert memory_hints(AniPortraitBackend.parse_options({"decode_chunk": 8, "offload": True,
                                                          "short_side": 256})) == [
        "--option decode_chunk=4"
    ]  # fmt: skip
