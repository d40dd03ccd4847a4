"""faceshot_core.checkpoints: safe reading of torch/safetensors weights and strict loading."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402

from faceshot_core.checkpoints import (  # noqa: E402
    CheckpointError,
    layout_problems,
    load_into,
    read_safetensors,
    read_torch_state_dict,
    safetensors_keys,
    split_prefixed,
)
from faceshot_core.errors import MissingDependencyError  # noqa: E402


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.bn = nn.BatchNorm2d(3)


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = _Net()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["bn.num_batches_tracked"].fill_(7)
    return state


class _Payload:
    """A pickle that runs code when loaded: it writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[[str], object], tuple[str]]:
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, faceshot_core.checkpoints; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_a_plain_state_dict_is_read_on_the_cpu(tmp_path: Path, zipfile: bool) -> None:
    state = _state()
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zipfile)  # legacy: no mmap
    read = read_torch_state_dict(path)
    assert list(read) == list(state)
    assert all(torch.equal(read[k], v) and read[k].device.type == "cpu" for k, v in state.items())


def test_a_nested_state_dict_is_unwrapped_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"step": 3, "state_dict": _state()}, path)
    assert set(read_torch_state_dict(path, nested="state_dict")) == set(_state())
    with pytest.raises(CheckpointError, match="'step' is a int, not a tensor"):
        read_torch_state_dict(path)


def test_pickled_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        read_torch_state_dict(path, what="pose weights")
    message = str(info.value)
    assert message.startswith(f"{path}: refused - it holds pickled Python objects (exec)")
    assert "so the pose weights was not loaded" in message and "\n" not in message
    assert isinstance(info.value, MissingDependencyError)
    assert not marker.exists()


def test_unreadable_files_and_other_contents_are_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_state(), good)
    data = good.read_bytes()
    for name, content in {
        "cut.pth": data[: len(data) // 2], "junk.pth": bytes(range(256)) * 4, "empty.pth": b""
    }.items():  # fmt: skip
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"{name}: not a readable checkpoint") as info:
            read_torch_state_dict(tmp_path / name)
        assert "\n" not in str(info.value)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a state dict; found <class 'list'>"):
        read_torch_state_dict(tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_torch_state_dict(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="found a directory"):
        read_torch_state_dict(tmp_path)


def test_safetensors_are_read_by_prefix_and_from_shards(tmp_path: Path) -> None:
    a, b = torch.arange(3.0), torch.ones(2, 2)
    save_file({"one.a": a, "two.b": b}, str(tmp_path / "all.safetensors"))
    assert safetensors_keys(tmp_path / "all.safetensors") == ["one.a", "two.b"]
    assert read_safetensors(tmp_path / "all.safetensors", prefix="two.").keys() == {"b"}
    with pytest.raises(CheckpointError, match=r"no key starts with 'three\.'; found \['one\.', "):
        read_safetensors(tmp_path / "all.safetensors", prefix="three.")
    save_file({"one.a": a}, str(tmp_path / "s1.safetensors"))
    save_file({"two.b": b}, str(tmp_path / "s2.safetensors"))
    index = {"weight_map": {"one.a": "s1.safetensors", "two.b": "s2.safetensors"}}
    (tmp_path / "w.safetensors.index.json").write_text(json.dumps(index))
    read = read_safetensors(tmp_path / "w.safetensors.index.json")
    assert torch.equal(read["one.a"], a) and torch.equal(read["two.b"], b)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: not a readable weights"):
        read_safetensors(tmp_path / "bad.safetensors")


def test_split_prefixed_keeps_only_the_prefix_and_strips_it() -> None:
    t = torch.zeros(1)
    state = {"module.a": t, "module.b.c": t, "other.a": t}
    assert split_prefixed(state, "module.") == {"a": t, "b.c": t}
    assert split_prefixed(state, "none.") == {}


def test_layout_problems_compare_with_tensors_or_shapes() -> None:
    state = _state()
    assert layout_problems(_Net().state_dict(), state) == []
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert layout_problems(shapes, state) == []
    state["conv.bias"] = torch.zeros(4)
    state["bn.num_batches_tracked"] = torch.zeros(())
    state["extra"] = torch.zeros(1)
    del state["bn.weight"]
    problems = layout_problems(_Net().state_dict(), state)
    assert problems == [
        "1 missing: bn.weight",
        "1 unexpected: extra",
        "2 of another shape or kind (file vs net): bn.num_batches_tracked [] float32 vs [] "
        "int64, conv.bias [4] float32 vs [3] float32",
    ]
    assert layout_problems(shapes, state, strict=False)[-1].endswith("conv.bias [4] float32 vs [3]")


def test_load_into_fills_a_meta_module_converting_floats_only() -> None:
    state = _state()
    with torch.device("meta"):
        net = _Net()
    assert load_into(net, state, dtype=torch.float64) is net
    assert net.conv.weight.dtype == torch.float64 and not net.conv.weight.is_meta
    assert net.bn.num_batches_tracked.dtype == torch.int64 and int(net.bn.num_batches_tracked) == 7
    assert net.conv.weight.requires_grad  # parameters stay parameters
    state["conv.weight"].fill_(5.0)  # the module holds copies
    assert not torch.equal(net.conv.weight, state["conv.weight"].double())


def test_load_into_errors_are_one_line_and_name_the_source() -> None:
    state = _state()
    state["conv.weight"] = torch.zeros(3, 2, 3, 3)
    with torch.device("meta"):
        net = _Net()
    with pytest.raises(CheckpointError) as info:
        load_into(net, state, source="/w/net.pth")
    message = str(info.value)
    assert message == (
        "/w/net.pth: does not fit _Net (1 of another shape or kind (file vs net): "
        "conv.weight [3, 2, 3, 3] float32 vs [3, 2, 1, 1] float32)"
    )
    many = {f"k{i}": torch.zeros(1) for i in range(12)}
    with pytest.raises(
        CheckpointError, match=r"12 unexpected: k0, k1, k10, k11, k2, .*k5, \.\.\. \(12 in all\)\)$"
    ):
        load_into(_Net(), {**_state(), **many})


def test_non_strict_loading_keeps_what_the_file_lacks_but_not_meta_tensors() -> None:
    net = _Net()
    before = net.bn.weight.detach().clone()
    state = {k: v for k, v in _state(1).items() if k.startswith("conv.")}
    load_into(net, {**state, "ignored": torch.zeros(1)}, strict=False)
    assert torch.equal(net.conv.weight, state["conv.weight"]) and torch.equal(net.bn.weight, before)
    with torch.device("meta"):
        empty = _Net()
    with pytest.raises(
        CheckpointError, match=r"left _Net incomplete \(4 without values: bn\.weight, bn\.bias"
    ):
        load_into(empty, state, strict=False)
