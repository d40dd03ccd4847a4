"""AniPortrait's weights: the release's .pth files, the diffusers-format repackaging, and the
denoising UNet's two files, all loaded strictly with one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from faceshot_aniportrait.checkpoints import (
    denoising_layout,
    denoising_state_dict,
    load_denoising_unet,
    load_pose_guider,
    load_reference_unet,
    motion_module_layout,
    read_component,
)
from faceshot_aniportrait.pose_guider import PoseGuider, PoseGuiderConfig
from faceshot_aniportrait.reference_unet import build_reference_unet, tiny_unet_config
from safetensors.torch import save_file
from torch import nn

from faceshot_core.checkpoints import CheckpointError, split_prefixed
from faceshot_core.errors import MissingDependencyError

#: ``released_layout(name)`` (conftest's fixture): key -> shape of a released checkpoint.
Layout = Callable[[str], dict[str, list[int]]]


def _guider(seed: int = 0) -> PoseGuider:
    torch.manual_seed(seed)
    guider = PoseGuider(PoseGuiderConfig.tiny())
    with torch.no_grad():
        for key, tensor in guider.state_dict().items():  # buffers share the module's storage
            if key.endswith("running_mean"):
                tensor.uniform_(-0.2, 0.2)
            elif key.endswith("num_batches_tracked"):
                tensor.fill_(30000)
    return guider


def _features(guider: PoseGuider, **kwargs: Any) -> tuple[torch.Tensor, ...]:
    pose = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        return guider(pose.to(guider.scale.dtype), **kwargs)


def _meta_state(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Tensors of a released layout's shapes, without memory (for checks of keys and shapes)."""
    return {k: torch.empty(v, device="meta") for k, v in layout.items()}


# --- the release's .pth files --------------------------------------------------------------------


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_released_format_pose_guider_round_trips(tmp_path: Path, zipfile: bool) -> None:
    guider = _guider()
    path = tmp_path / "pose_guider.pth"
    torch.save(guider.state_dict(), path, _use_new_zipfile_serialization=zipfile)
    loaded = load_pose_guider(path, PoseGuiderConfig.tiny())
    assert not any(p.requires_grad for p in loaded.parameters())
    for a, b in zip(_features(loaded), _features(guider), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    running = _features(guider, batch_statistics=False)
    for a, b in zip(_features(loaded, batch_statistics=False), running, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the same from the folder holding the release's files
    folder = load_pose_guider(tmp_path, PoseGuiderConfig.tiny(), batch_statistics=False)
    assert folder.batch_statistics is False
    torch.testing.assert_close(folder.final_proj.weight, guider.final_proj.weight)


def test_weights_are_converted_and_copied_and_counters_stay_integers(tmp_path: Path) -> None:
    guider = _guider()
    path = tmp_path / "pose_guider.pth"
    torch.save(guider.state_dict(), path)
    loaded = load_pose_guider(path, PoseGuiderConfig.tiny(), dtype=torch.bfloat16)
    assert loaded.final_proj.weight.dtype == torch.bfloat16
    counter = loaded.state_dict()["conv_layers.1.num_batches_tracked"]
    assert counter.dtype == torch.int64 and int(counter) == 30000
    assert all(t.device.type == "cpu" and not t.is_meta for t in loaded.state_dict().values())
    state = torch.load(path, weights_only=True)
    again = load_pose_guider(state, PoseGuiderConfig.tiny())
    state["scale"].fill_(-1.0)  # loaded tensors are copies, not views of the caller's
    assert torch.equal(again.scale, guider.scale.detach())


def test_released_format_reference_unet_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    unet: Any = build_reference_unet(tiny_unet_config())
    path = tmp_path / "reference_unet.pth"
    torch.save(unet.state_dict(), path)
    loaded: Any = load_reference_unet(tmp_path, tiny_unet_config(), dtype=torch.float16)
    assert not loaded.training and loaded.conv_in.weight.dtype == torch.float16
    want = unet.state_dict()
    assert all(torch.equal(v, want[k].half()) for k, v in loaded.state_dict().items())
    with pytest.raises(CheckpointError, match="another shape"):  # SD 1.5 widths insisted on
        load_reference_unet(path)


class _Payload:
    """A pickle that runs code when loaded: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], object], tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_a_file_with_pickled_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    state: dict[str, object] = dict(_guider().state_dict())
    state["extra"] = _Payload(marker)
    torch.save(state, tmp_path / "pose_guider.pth")
    with pytest.raises(CheckpointError) as info:
        load_pose_guider(tmp_path, PoseGuiderConfig.tiny())
    message = str(info.value)
    assert "pose_guider.pth: refused" in message and "could run code" in message
    assert "\n" not in message and isinstance(info.value, MissingDependencyError)
    assert not marker.exists()


def test_wrong_keys_and_shapes_are_all_named_in_one_line(tmp_path: Path) -> None:
    state = dict(_guider().state_dict())
    del state["cross_attn4.proj_out.bias"]
    state["cross_attn4.transformer_blocks.0.attn2.to_q.weight"] = torch.zeros(8, 8)
    state["final_proj.bias"] = torch.zeros(3)
    state["conv_layers.1.num_batches_tracked"] = torch.zeros(())  # a float counter
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_pose_guider(path, PoseGuiderConfig.tiny())
    message = str(info.value)
    assert message.startswith(f"{path}: does not fit PoseGuider (") and "\n" not in message
    assert "1 missing: cross_attn4.proj_out.bias" in message
    assert "1 unexpected: cross_attn4.transformer_blocks.0.attn2.to_q.weight" in message
    assert "final_proj.bias [3] float32 vs [16] float32" in message
    assert "conv_layers.1.num_batches_tracked [] float32 vs [] int64" in message


def test_unreadable_or_absent_weights_give_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_guider().state_dict(), good)
    data = good.read_bytes()
    for name, content in {"cut.pth": data[: len(data) // 2], "empty.pth": b""}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"{name}: not a readable") as info:
            load_pose_guider(tmp_path / name, PoseGuiderConfig.tiny())
        assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_pose_guider(tmp_path / "absent.pth")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(CheckpointError, match=r"looked for pose_guider\.pth, a pose_guider/"):
        read_component(tmp_path / "empty_folder", "pose_guider")
    with pytest.raises(ValueError, match="unknown AniPortrait component"):
        read_component(tmp_path, "audio2mesh")


# --- the diffusers-format repackaging ------------------------------------------------------------


def test_single_safetensors_file_is_split_by_component_prefix(tmp_path: Path) -> None:
    guider = _guider()
    torch.manual_seed(1)
    unet: Any = build_reference_unet(tiny_unet_config())
    combined = {f"pose_guider.{k}": v for k, v in guider.state_dict().items()}
    combined |= {f"reference_unet.{k}": v for k, v in unet.state_dict().items()}
    combined |= {"vae.decoder.conv_out.bias": torch.zeros(3), "image_encoder.x": torch.ones(2)}
    path = tmp_path / "aniportrait.safetensors"
    save_file(combined, str(path))
    vae = split_prefixed(combined, "vae.")
    assert vae == {"decoder.conv_out.bias": combined["vae.decoder.conv_out.bias"]}
    assert set(read_component(path, "pose_guider")) == set(guider.state_dict())
    assert set(read_component(tmp_path, "image_encoder")) == {"x"}  # the folder holding it
    loaded = load_pose_guider(tmp_path, PoseGuiderConfig.tiny())
    for a, b in zip(_features(loaded), _features(guider), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    loaded_unet: Any = load_reference_unet(path, tiny_unet_config())
    torch.testing.assert_close(loaded_unet.conv_in.weight, unet.conv_in.weight, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"no key starts with 'denoising_unet\.'"):
        read_component(path, "denoising_unet")


def test_component_folders_hold_unprefixed_release_keys(tmp_path: Path) -> None:
    guider = _guider()
    (tmp_path / "pose_guider").mkdir()
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in guider.state_dict().items()},
        str(tmp_path / "pose_guider" / "diffusion_pytorch_model.safetensors"),
    )
    loaded = load_pose_guider(tmp_path, PoseGuiderConfig.tiny())  # fp16 file, fp32 module
    assert loaded.scale.dtype == torch.float32
    torch.testing.assert_close(loaded.final_proj.weight, guider.final_proj.weight.half().float())
    (tmp_path / "vae").mkdir()
    with pytest.raises(CheckpointError, match="vae: no weights file"):
        read_component(tmp_path, "vae")


# --- the denoising UNet ------------------------------------------------------------------------


def test_layouts_written_out_equal_the_released_ones(released_layout: Layout) -> None:
    def tupled(layout: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v) for k, v in layout.items()}

    assert motion_module_layout() == tupled(released_layout("aniportrait_motion_module"))
    full = denoising_layout()
    assert full == tupled(released_layout("aniportrait_denoising_unet"))
    assert len(full) == 1274 and len(motion_module_layout()) == 588


def test_denoising_state_merges_the_two_released_files(released_layout: Layout) -> None:
    denoising = _meta_state(released_layout("aniportrait_denoising_unet_no_motion_module"))
    motion = _meta_state(released_layout("aniportrait_motion_module"))
    motion["conv_in.weight"] = torch.empty(1, device="meta")  # not a motion key: ignored
    merged = denoising_state_dict(denoising, motion)
    want = released_layout("aniportrait_denoising_unet")
    assert {k: list(v.shape) for k, v in merged.items()} == want
    assert merged["conv_in.weight"] is denoising["conv_in.weight"]
    assert merged["mid_block.motion_modules.0.temporal_transformer.norm.bias"].shape == (1280,)


def test_denoising_state_without_its_motion_modules_is_refused(released_layout: Layout) -> None:
    denoising = _meta_state(released_layout("aniportrait_denoising_unet_no_motion_module"))
    motion = _meta_state(released_layout("aniportrait_motion_module"))
    del motion["up_blocks.3.motion_modules.2.temporal_transformer.proj_out.bias"]
    with pytest.raises(CheckpointError) as info:
        denoising_state_dict(denoising, motion, source="den.pth + mm.pth")
    message = str(info.value)
    assert message.startswith("den.pth + mm.pth: does not fit the denoising UNet (1 missing: ")
    assert "up_blocks.3.motion_modules.2.temporal_transformer.proj_out.bias" in message
    with pytest.raises(CheckpointError, match=r"588 missing: .*\(588 in all\)"):
        denoising_state_dict(denoising, None)


class _StandIn(nn.Module):
    """A stand-in for the 3D denoising UNet: one plain and one motion-module tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(4, 8, 3)
        self.mid_block = nn.Module()
        self.mid_block.motion_modules = nn.ModuleList([nn.Linear(8, 8)])


def test_load_denoising_unet_fills_a_module_from_the_two_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _StandIn()
    state = source.state_dict()
    torch.save({k: v for k, v in state.items() if "motion_module" not in k}, tmp_path / "d.pth")
    torch.save({k: v for k, v in state.items() if "motion_module" in k}, tmp_path / "m.pth")
    with torch.device("meta"):
        module = _StandIn()
    load_denoising_unet(module, tmp_path / "d.pth", tmp_path / "m.pth", dtype=torch.float64)
    assert not module.training
    assert module.conv_in.weight.dtype == torch.float64
    torch.testing.assert_close(module.state_dict(), {k: v.double() for k, v in state.items()})
    with torch.device("meta"):
        module = _StandIn()
    with pytest.raises(CheckpointError, match=r"d\.pth: does not fit .*2 missing: mid_block"):
        load_denoising_unet(module, tmp_path / "d.pth")
    # the release's folder: denoising_unet.pth and motion_module.pth, merged and checked
    (tmp_path / "d.pth").rename(tmp_path / "denoising_unet.pth")
    (tmp_path / "m.pth").rename(tmp_path / "motion_module.pth")
    load_denoising_unet(module, tmp_path)
    torch.testing.assert_close(module.state_dict(), state)
