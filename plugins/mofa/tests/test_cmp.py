"""CMP: the released layout, safe strict loading, and the dense flow of a landmark run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from faceshot_mofa.cmp import (
    CMPCheckpointError,
    CMPConfig,
    SparseToDenseFlow,
    _nearest_index,
    dense_flow,
    load_cmp,
)
from faceshot_mofa.cmp_loading import config_from_state_dict
from faceshot_mofa.conditioning import CMP_BINS, CMP_FMAX
from torch import nn

from faceshot_core.errors import FaceshotUserError, MissingDependencyError

STEP = 2 * CMP_FMAX / CMP_BINS  # width of one flow bin, pixels


def _tiny(seed: int = 0) -> SparseToDenseFlow:
    """A tiny CMP in eval mode with non-trivial batch-norm statistics (so loading them counts)."""
    torch.manual_seed(seed)
    net = SparseToDenseFlow(CMPConfig.tiny())
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for key, tensor in net.state_dict().items():  # buffers, sharing the module's storage
            if key.endswith("running_mean"):
                tensor.uniform_(-0.2, 0.2)
            elif key.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif key.endswith("num_batches_tracked"):
                tensor.fill_(42000)
    return net.eval()


def _released_format(net: nn.Module) -> dict[str, object]:
    """The released file's structure: ``module.`` keys, a step and an SGD optimizer state."""
    state = {f"module.{k}": v.clone() for k, v in net.state_dict().items()}
    momentum = {i: {"momentum_buffer": torch.zeros_like(p)} for i, p in enumerate(net.parameters())}
    group = {"lr": 0.001, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0001,
             "nesterov": False, "initial_lr": 0.1, "params": list(momentum)}  # fmt: skip
    optimizer = {"state": momentum, "param_groups": [group]}
    return {"step": 42000, "state_dict": state, "optimizer": optimizer}


def _inputs(n: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    sparse = torch.randn(n, 4, size, size, generator=g)
    return image, sparse


# --- the network -------------------------------------------------------------------------------


def test_full_size_network_has_exactly_the_released_keys_and_shapes(
    released_layout: Callable[[str], dict[str, list[int]]],
) -> None:
    want = released_layout("mofa_cmp")
    with torch.device("meta"):
        net = SparseToDenseFlow()
    got = {f"module.{k}": list(v.shape) for k, v in net.state_dict().items()}
    assert sorted(set(want) - set(got)) == []  # nothing missing
    assert sorted(set(got) - set(want)) == []  # nothing unexpected
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert len(got) == 455
    assert sum(p.numel() for p in net.parameters()) == 28_516_422


def test_full_size_network_gives_198_logits_at_half_of_384() -> None:
    with torch.device("meta"):  # shapes only: checks strides, dilations and the skips' sizes
        net = SparseToDenseFlow().eval()
        out = net(torch.empty(1, 3, 384, 384), torch.empty(3, 4, 384, 384))
    assert tuple(out.shape) == (3, 198, 192, 192)


def test_tiny_config_keeps_the_released_key_names() -> None:
    with torch.device("meta"):
        full = set(SparseToDenseFlow().state_dict())
        tiny = set(SparseToDenseFlow(CMPConfig.tiny()).state_dict())
    assert tiny <= full
    assert {k.split(".")[0] for k in tiny} == {"image_encoder", "flow_encoder", "flow_decoder"}


def test_tiny_network_output_shape_for_a_384_input() -> None:
    net = _tiny()
    image, sparse = _inputs(1, 384)
    with torch.no_grad():
        out = net(image, sparse)
    assert tuple(out.shape) == (1, 198, 192, 192) and torch.isfinite(out).all()


def test_one_image_is_shared_by_every_sparse_input() -> None:
    net = _tiny()
    image, sparse = _inputs(3)
    with torch.no_grad():
        shared = net(image, sparse)
        repeated = net(image.expand(3, -1, -1, -1), sparse)
    torch.testing.assert_close(shared, repeated, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected image"):
        net(torch.cat([image, image]), sparse)


# --- loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_released_format_file_loads_and_matches_the_network(tmp_path: Path, zipfile: bool) -> None:
    net = _tiny()
    path = tmp_path / "ckpt_iter_42000.pth.tar"
    torch.save(_released_format(net), path, _use_new_zipfile_serialization=zipfile)
    loaded = load_cmp(path)  # the config is read from the file
    assert loaded.config == CMPConfig.tiny()
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    image, sparse = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, sparse), net(image, sparse), rtol=0, atol=0)


def test_a_bare_state_dict_loads_on_the_requested_dtype(tmp_path: Path) -> None:
    net = _tiny()
    path = tmp_path / "bare.pth"
    torch.save(net.state_dict(), path)  # no wrapper, no ``module.``
    loaded = load_cmp(path, CMPConfig.tiny(), dtype=torch.float64)
    assert loaded.flow_decoder.head.weight.dtype == torch.float64
    counter = loaded.state_dict()["image_encoder.bn1.num_batches_tracked"]
    assert counter.dtype == torch.int64 and int(counter) == 42000


def test_config_is_read_back_from_the_released_layout() -> None:
    with torch.device("meta"):
        state = SparseToDenseFlow().state_dict()
    assert config_from_state_dict(state) == CMPConfig()
    assert config_from_state_dict({}) == CMPConfig()


class _Payload:
    """A pickle that runs code when loaded: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], object], tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_a_file_with_pickled_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth.tar"
    checkpoint = _released_format(_tiny())
    checkpoint["optimizer"] = _Payload(marker)
    torch.save(checkpoint, path)
    with pytest.raises(CMPCheckpointError, match=r"evil\.pth\.tar: refused .*could run code"):
        load_cmp(path)
    assert not marker.exists()


def test_wrong_keys_and_shapes_are_all_named_in_one_error(tmp_path: Path) -> None:
    checkpoint = _released_format(_tiny())
    state = checkpoint["state_dict"]
    assert isinstance(state, dict)
    del state["module.flow_decoder.head.bias"]
    state["module.flow_decoder.extra.weight"] = torch.zeros(1)
    state["module.image_encoder.conv5.bias"] = torch.zeros(3)
    path = tmp_path / "wrong.pth"
    torch.save(checkpoint, path)
    with pytest.raises(CMPCheckpointError) as info:
        load_cmp(path, CMPConfig.tiny())
    message = str(info.value)
    assert "wrong.pth" in message
    assert "1 missing: flow_decoder.head.bias" in message
    assert "1 unexpected: flow_decoder.extra.weight" in message
    assert "image_encoder.conv5.bias [3] float32 vs [8] float32" in message
    assert isinstance(info.value, MissingDependencyError)


def test_a_given_config_is_insisted_on(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    torch.save(_released_format(_tiny()), path)
    with pytest.raises(CMPCheckpointError, match="another shape"):
        load_cmp(path, CMPConfig())


def test_unreadable_files_give_one_line_user_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_released_format(_tiny()), good)
    data = good.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "garbage.pth": bytes(range(256)) * 4,
        "empty.pth": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CMPCheckpointError, match=rf"{name}: not a readable CMP checkpoint"):
            load_cmp(tmp_path / name)
    with pytest.raises(FaceshotUserError, match="not found"):
        load_cmp(tmp_path / "absent.pth")
    torch.save({"step": 1}, tmp_path / "other.pth")
    with pytest.raises(CMPCheckpointError, match="not a CMP checkpoint"):
        load_cmp(tmp_path / "other.pth")


# --- dense flow --------------------------------------------------------------------------------


class _PeakedLogits(nn.Module):
    """Stands in for CMP: each frame's logits peak where its sparse x flow says.

    Frame m of the test moves every landmark by (m, 0) pixels at 384, so the largest sparse
    x value is m; the logits put x in bin 49 + m and y in bin 49 - m everywhere, i.e. a flow
    of ``(m * STEP, -m * STEP)`` at 192x192.  Every call is recorded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the stand-in a device and dtype
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        self.calls.append((image.clone(), sparse.clone()))
        n = sparse.shape[0]
        shift = sparse[:, 0].flatten(1).amax(dim=1).round().long()
        logits = torch.zeros(n, 2 * CMP_BINS, 192, 192)
        for i, m in enumerate(shift.tolist()):
            logits[i, CMP_BINS // 2 + m] = 100.0
            logits[i, CMP_BINS + CMP_BINS // 2 - m] = 100.0
        return logits


def _shifted_run(frames: int, h: int, w: int) -> torch.Tensor:
    """Landmarks on a grid inside (h, w); frame m moved right by m pixels *at 384*."""
    xs = torch.linspace(0.1, 0.9, 17).repeat(4)[:68] * w
    ys = torch.linspace(0.1, 0.9, 4).repeat_interleave(17)[:68] * h
    base = torch.stack([xs, ys], dim=-1)
    return torch.stack([base + torch.tensor([m * w / 384, 0.0]) for m in range(frames)])


def test_dense_flow_reads_the_bins_and_scales_to_a_non_square_image() -> None:
    h, w, frames = 256, 320, 4
    net = _PeakedLogits().eval()
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(2))
    flow = dense_flow(net, image, _shifted_run(frames, h, w), chunk=2)
    assert flow.shape == (frames - 1, 2, h, w) and flow.dtype == torch.float32
    for m in range(1, frames):
        torch.testing.assert_close(flow[m - 1, 0], torch.full((h, w), m * STEP * w / 384))
        torch.testing.assert_close(flow[m - 1, 1], torch.full((h, w), -m * STEP * h / 384))
    # chunks of 2 frames; one shared image, resized nearest to 384 and mapped to [-1, 1]
    assert [tuple(s.shape) for _, s in net.calls] == [(2, 4, 384, 384), (1, 4, 384, 384)]
    rows, cols = _nearest_index(h, 384), _nearest_index(w, 384)
    expected_image = (image[:, rows][:, :, cols] * 2 - 1)[None]
    for seen, sparse in net.calls:
        assert torch.equal(seen, expected_image)
        assert torch.equal(sparse[:, 2], sparse[:, 3])  # the mask, twice
        assert int(sparse[0, 2].sum()) == 68  # the landmarks sit on distinct pixels at 384


def test_dense_flow_at_384_uses_image_and_landmarks_as_given() -> None:
    net = _PeakedLogits().eval()
    image = torch.rand(3, 384, 384)
    run = _shifted_run(3, 384, 384)
    flow = dense_flow(net, image, run.numpy())  # numpy landmarks are accepted too
    torch.testing.assert_close(flow[1, 0], torch.full((384, 384), 2 * STEP))
    seen, sparse = net.calls[0]
    assert torch.equal(seen[0], image * 2 - 1)
    x, y = int(run[0, 0, 0]), int(run[0, 0, 1])
    assert sparse[0, 2, y, x] == 1 and float(sparse[1, 0, y, x]) == pytest.approx(2.0)


def test_dense_flow_of_one_frame_is_empty() -> None:
    net = _PeakedLogits().eval()
    flow = dense_flow(net, torch.rand(3, 64, 128), np.zeros((1, 68, 2), dtype=np.float32))
    assert flow.shape == (0, 2, 64, 128) and net.calls == []


def test_dense_flow_runs_a_real_network_in_its_dtype_and_returns_float32() -> None:
    net = _tiny().double()
    flow = dense_flow(net, torch.rand(3, 128, 192), _shifted_run(2, 128, 192))
    assert flow.shape == (1, 2, 128, 192) and flow.dtype == torch.float32
    assert torch.isfinite(flow).all() and flow.abs().max() <= CMP_FMAX * 192 / 384
    with pytest.raises(ValueError, match="eval mode"):
        dense_flow(net.train(), torch.rand(3, 128, 192), _shifted_run(2, 128, 192))


def test_nearest_resize_uses_float32_scales_as_on_cuda() -> None:
    """CPU float64 ``F.interpolate`` would take column 63 of a 448 image for output 54."""
    for size in (448, 512, 320, 576):
        x = torch.arange(size, dtype=torch.float32)[None, None, None]
        same = torch.nn.functional.interpolate(x, size=(1, 384), mode="nearest")
        assert torch.equal(same[0, 0, 0].long(), _nearest_index(size, 384))
    assert int(_nearest_index(448, 384)[54]) == 62
