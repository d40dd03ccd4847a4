"""The PoseGuider: the released layout, output shapes, and its two BatchNorm modes."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from faceshot_aniportrait.pose_guider import PoseGuider, PoseGuiderConfig
from torch import nn

#: ``released_layout(name)`` (conftest's fixture): key -> shape of a released checkpoint.
Layout = Callable[[str], dict[str, list[int]]]


def _tiny(seed: int = 0) -> PoseGuider:
    """A tiny PoseGuider with non-trivial BatchNorm affines and running statistics."""
    torch.manual_seed(seed)
    guider = PoseGuider(PoseGuiderConfig.tiny())
    with torch.no_grad():
        for m in guider.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(1234)
    return guider


def _poses(n: int = 3, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _composed(guider: PoseGuider, pose: torch.Tensor) -> list[torch.Tensor]:
    """The features composed from the submodules' own forwards (the upstream order)."""
    x = guider.final_proj(guider.conv_layers(pose)) * guider.scale
    out = [x]
    for convs, attention in (
        (guider.conv_layers_1, guider.cross_attn1),
        (guider.conv_layers_2, guider.cross_attn2),
        (guider.conv_layers_3, guider.cross_attn3),
        (guider.conv_layers_4, guider.cross_attn4),
    ):
        x = attention(convs(x))
        out.append(x)
    return out


def test_full_size_guider_has_exactly_the_released_keys_and_shapes(
    released_layout: Layout,
) -> None:

    want = released_layout("aniportrait_pose_guider")
    with torch.device("meta"):
        guider = PoseGuider()
    got = {k: list(v.shape) for k, v in guider.state_dict().items()}
    assert sorted(set(want) - set(got)) == []  # nothing missing
    assert sorted(set(got) - set(want)) == []  # nothing unexpected
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert len(got) == 184 and len(list(guider.buffers())) == 45
    assert sum(p.numel() for p in guider.parameters()) == 167_518_523
    assert not any(".attn2." in k or ".norm2." in k for k in got)  # self-attention only


def test_full_size_guider_gives_five_features_for_512_pose_images() -> None:
    with torch.device("meta"):  # shapes only: strides, paddings and widths
        features = PoseGuider()(torch.empty(2, 3, 512, 512))
    assert [tuple(f.shape) for f in features] == [
        (2, 320, 64, 64), (2, 320, 32, 32), (2, 640, 16, 16), (2, 1280, 8, 8), (2, 1280, 8, 8),
    ]  # fmt: skip


def test_tiny_config_keeps_the_released_key_names() -> None:
    with torch.device("meta"):
        full = PoseGuider().state_dict()
        tiny = PoseGuider(PoseGuiderConfig.tiny()).state_dict()
    assert list(tiny) == list(full)


def test_tiny_guider_output_shapes_and_scale() -> None:
    guider = _tiny()
    with torch.no_grad():
        features = guider(_poses(3, 64))
        assert PoseGuiderConfig.tiny().feature_channels() == (16, 16, 32, 64, 64)
        assert [tuple(f.shape) for f in features] == [
            (3, 16, 8, 8), (3, 16, 4, 4), (3, 32, 2, 2), (3, 64, 1, 1), (3, 64, 1, 1),
        ]  # fmt: skip
        assert all(torch.isfinite(f).all() for f in features)
        doubled = copy.deepcopy(guider)
        doubled.scale.mul_(2)  # feature 0 is final_proj's output times the learned scale
        torch.testing.assert_close(doubled(_poses(3, 64))[0], 2 * features[0])


def test_batch_statistics_is_train_mode_batchnorm_without_its_side_effects() -> None:
    guider = _tiny().eval()
    before = {k: v.clone() for k, v in guider.state_dict().items()}
    pose = _poses()
    with torch.no_grad():
        ours = guider(pose)
        train_mode = copy.deepcopy(guider).train()  # how the released pipeline ran it
        reference = _composed(train_mode, pose)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    after = guider.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # buffers untouched
    assert not guider.training  # the mode is not switched either
    moved = train_mode.state_dict()["conv_layers.1.running_mean"]
    assert not torch.equal(moved, before["conv_layers.1.running_mean"])  # train mode would


def test_running_statistics_is_eval_mode_batchnorm_and_differs() -> None:
    guider = _tiny().train()  # the module's mode plays no part
    pose = _poses()
    with torch.no_grad():
        running = guider(pose, batch_statistics=False)
        reference = _composed(copy.deepcopy(guider).eval(), pose)
        batch = guider(pose)
    for a, b in zip(running, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(running, batch, strict=True):
        assert (a - b).abs().max() > 1e-2 * b.abs().max()
    fixed = PoseGuider(PoseGuiderConfig.tiny(), batch_statistics=False)
    fixed.load_state_dict(guider.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fixed(pose)[4], running[4], rtol=0, atol=0)


def test_with_batch_statistics_a_frame_depends_on_its_window_but_not_on_duplicates() -> None:
    guider = _tiny()
    pose = _poses(3)
    other = torch.cat([pose[:1], _poses(2, seed=7)])
    with torch.no_grad():
        window = guider(pose)
        changed = guider(other)
        cfg = guider(torch.cat([pose, pose]))  # classifier-free guidance repeats the window
        alone = guider(other, batch_statistics=False)[1][0]
        alone_too = guider(pose, batch_statistics=False)[1][0]
    assert not torch.allclose(window[1][0], changed[1][0], atol=1e-4)
    torch.testing.assert_close(alone, alone_too, rtol=1e-5, atol=1e-5)
    for a, b in zip(window, cfg, strict=True):
        torch.testing.assert_close(b[:3], a, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b[3:], a, rtol=1e-4, atol=1e-4)


def test_one_value_per_channel_is_a_clear_error_with_batch_statistics() -> None:
    guider = _tiny()
    with torch.no_grad(), pytest.raises(ValueError, match="more than one value per channel"):
        guider(_poses(1, 64))  # 1x1 at 1/64 with a single frame
    with torch.no_grad():
        features = guider(_poses(1, 64), batch_statistics=False)
    assert tuple(features[4].shape) == (1, 64, 1, 1)


def test_input_must_be_a_batch_of_rgb_images() -> None:
    guider = _tiny()
    with pytest.raises(ValueError, match=r"expects pose images \[N, 3, H, W\]"):
        guider(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="expects pose images"):
        guider(torch.zeros(1, 4, 64, 64))


def test_input_is_cast_to_the_weights_dtype() -> None:
    guider = _tiny().double()
    with torch.no_grad():
        features = guider(_poses().float())
    assert all(f.dtype == torch.float64 for f in features)
