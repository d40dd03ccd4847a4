"""Helpers the GPU backends share: out-of-memory explained in one line, offloading, compiling."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from faceshot_backends.gpu_faults import (
    GpuOutOfMemoryError,
    explain_out_of_memory,
    memory_hints,
)
from faceshot_backends.torch_modules import compile_blocks, offload_except
from faceshot_core.errors import FaceshotUserError


def test_hints_name_only_the_options_a_backend_has_and_can_lower() -> None:
    every = SimpleNamespace(offload=False, decode_chunk=8, short_side=512)
    assert memory_hints(every) == ["--option offload=true", "--option decode_chunk=4",
                                   "--option short_side=384"]  # fmt: skip
    assert memory_hints(SimpleNamespace(offload=True, decode_chunk=2, short_side=256)) == []
    assert memory_hints(SimpleNamespace(short_side=640)) == ["--option short_side=512"]
    assert memory_hints(object()) == []


def test_out_of_memory_becomes_one_user_error_and_other_errors_pass() -> None:
    class BackendOutOfMemoryError(GpuOutOfMemoryError):
        pass

    def frames(error: BaseException) -> Iterator[np.ndarray]:
        yield np.zeros((2, 2, 3), np.uint8)
        raise error

    stream = explain_out_of_memory(frames(torch.cuda.OutOfMemoryError("CUDA out of memory.")),
                                   ["--option offload=true"], BackendOutOfMemoryError)  # fmt: skip
    assert next(stream).shape == (2, 2, 3)
    one_line = r"^the GPU ran out of memory while generating; try --option offload=true$"
    with pytest.raises(BackendOutOfMemoryError, match=one_line) as caught:
        next(stream)
    assert isinstance(caught.value, FaceshotUserError)
    with pytest.raises(GpuOutOfMemoryError, match="a GPU with more memory"):
        list(explain_out_of_memory(frames(torch.cuda.OutOfMemoryError()), []))
    with pytest.raises(ValueError, match="not memory"):
        list(explain_out_of_memory(frames(ValueError("not memory")), []))


def test_offload_keeps_the_wanted_modules_on_the_device_and_skips_released_ones() -> None:
    moves: list[tuple[str, object]] = []

    class Module:
        def __init__(self, name: str) -> None:
            self.name = name

        def to(self, device: object) -> None:
            moves.append((self.name, device))

    a, b = Module("a"), Module("b")
    offload_except([a, None, b], [b], "cuda:1")
    assert moves == [("a", "cpu"), ("b", "cuda:1")]


def test_compile_blocks_compiles_down_mid_and_up_blocks() -> None:
    compiled: list[str] = []

    class Block:
        def __init__(self, name: str) -> None:
            self.name = name

        def compile(self) -> None:
            compiled.append(self.name)

    model = SimpleNamespace(down_blocks=[Block("d0"), Block("d1")], mid_block=Block("m"),
                            up_blocks=[Block("u0")])  # fmt: skip
    adapter = SimpleNamespace(down_blocks=[Block("a0")], mid_block=Block("am"))  # no up path
    compile_blocks(model, adapter)
    assert compiled == ["d0", "d1", "m", "u0", "a0", "am"]
