"""Reading released model weights safely and loading them strictly (shared by backend plugins).

Released research checkpoints come as ``torch.save`` pickles (``.pth``, ``.pt``, ``.bin``) or as
safetensors files.  A pickle can carry code that runs when it is unpickled, so pickles are read
with ``torch.load(weights_only=True)`` only: a file holding anything but tensors and plain
containers is refused, with one line naming the file, before any of it runs.  Safetensors files
hold no code at all.

Loading is strict by default: every key the module has must come from the file, with the same
shape and the same kind (floating point or integer), and the file may hold nothing else.  A
silently half-loaded network produces plausible-looking but wrong output, which is much harder
to diagnose than an error listing what does not fit.  Modules are meant to be built on the meta
device (no random initialisation, no memory) and filled with :func:`load_into`, which assigns
the file's tensors (converted one at a time) instead of copying them into existing storage.

Importing this module does not import torch (faceshot runs without it); the functions do.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from faceshot_core.errors import MissingDependencyError

if TYPE_CHECKING:
    import torch

__all__ = [
    "CheckpointError",
    "layout_problems",
    "load_into",
    "read_safetensors",
    "read_torch_state_dict",
    "safetensors_keys",
    "split_prefixed",
]

#: At most this many keys of each kind are named in an error message.
SHOWN = 8

#: What a layout may give per key: a tensor (its shape is used) or a shape.
Shape = Sequence[int]


class CheckpointError(MissingDependencyError):
    """A weights file is absent, unreadable, unsafe, or does not fit the network.

    A :class:`~faceshot_core.errors.MissingDependencyError`: weights are a component the user
    installs, and the fix is the same in every case (an intact copy of the right file), so the
    CLI shows it as one line.
    """


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (torch's messages run to paragraphs)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: {what} not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: expected the {what} file, found a directory")


def _torch_load(path: Path, what: str, mmap: bool) -> object:
    """``torch.load(weights_only=True)`` on the CPU, every failure turned into one line."""
    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:  # pre-1.6 (legacy) files cannot be memory-mapped
            if not mmap or "mmap can only be used" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if unsafe:
            raise CheckpointError(
                f"{path}: refused - it holds pickled Python objects ({unsafe.group(1)}), not "
                f"only tensors; loading them could run code, so the {what} was not loaded"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable {what} (corrupt?): {first_line(exc)}"
        ) from None
    except Exception as exc:  # RuntimeError (zip), EOFError, struct.error, KeyError, OSError
        raise CheckpointError(
            f"{path}: not a readable {what} (truncated or corrupt?): {first_line(exc)}"
        ) from None


def read_torch_state_dict(
    path: str | os.PathLike[str],
    *,
    what: str = "checkpoint",
    nested: str | None = None,
    mmap: bool = True,
) -> dict[str, torch.Tensor]:
    """The tensors of a ``torch.save`` state dict file, on the CPU, keys as stored.

    Read with ``weights_only=True`` (a file with pickled code is refused, nothing in it runs)
    and, by default, memory-mapped: a multi-GB file is paged in as its tensors are used
    instead of being read whole first (legacy non-zip files are read normally).  ``nested``:
    the key under which some formats keep the state dict (``"state_dict"`` in training
    checkpoints); a file without that key must be a bare state dict.  ``what`` names the file
    in errors ("pose guider weights").  Raises :class:`CheckpointError`.
    """
    p = Path(path)
    _check_file(p, what)
    obj = _torch_load(p, what, mmap)
    import torch

    if nested is not None and isinstance(obj, Mapping):
        if isinstance(obj.get(nested), Mapping):
            obj = obj[nested]
        elif not all(isinstance(v, torch.Tensor) for v in obj.values()):
            keys = sorted(map(str, obj))[:SHOWN]
            raise CheckpointError(f"{p}: not a {what} (no {nested!r}; found keys {keys})")
    if not isinstance(obj, Mapping) or not obj:
        found = f"keys {sorted(map(str, obj))[:SHOWN]}" if isinstance(obj, Mapping) else type(obj)
        raise CheckpointError(f"{p}: not a {what} (expected a state dict; found {found})")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{p}: {key!r} is a {type(value).__name__}, not a tensor")
        tensors[str(key)] = value
    return tensors


def safetensors_keys(path: str | os.PathLike[str], *, what: str = "weights") -> list[str]:
    """The keys of a safetensors file (or sharded index), without reading any tensor."""
    p = Path(path)
    _check_file(p, what)
    return list(_safetensors_keys(p, what))


def _safetensors_keys(path: Path, what: str) -> dict[str, Path]:
    """Key -> file for one ``.safetensors`` file or a sharded ``.safetensors.index.json``."""
    if path.name.endswith(".index.json"):
        try:
            weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
            return {str(k): path.parent / str(v) for k, v in weight_map.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{path}: not a readable {what} index: {first_line(exc)}"
            ) from None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return dict.fromkeys(fh.keys(), path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable {what} (truncated or corrupt?): {first_line(exc)}"
        ) from None


def read_safetensors(
    path: str | os.PathLike[str], *, prefix: str = "", what: str = "weights"
) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose keys start with ``prefix``, prefix removed.

    Only the selected tensors are read, so one component of a multi-component file (such as
    ``aniportrait.safetensors``) costs only its own memory.  ``path`` may also be a sharded
    checkpoint's ``*.safetensors.index.json``.  Raises :class:`CheckpointError` when the file
    is absent, unreadable, or holds no key with the prefix.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    _check_file(p, what)
    files = _safetensors_keys(p, what)
    chosen = [k for k in files if k.startswith(prefix)]
    if not chosen:
        found = sorted({k.split(".")[0] + "." for k in files})[:SHOWN]
        raise CheckpointError(f"{p}: no {what} (no key starts with {prefix!r}; found {found})")
    tensors: dict[str, torch.Tensor] = {}
    for shard in dict.fromkeys(files[k] for k in chosen):
        _check_file(shard, what)
        try:
            with safe_open(str(shard), framework="pt", device="cpu") as fh:
                for key in (k for k in chosen if files[k] == shard):
                    tensors[key.removeprefix(prefix)] = fh.get_tensor(key)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{shard}: not a readable {what} (truncated or corrupt?): {first_line(exc)}"
            ) from None
    return tensors


def split_prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose keys start with ``prefix``, with the prefix removed.

    For files holding several components under prefixes (``"pose_guider."``) and for wrapped
    training checkpoints (``"module."``).  Keys without the prefix are left out.
    """
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _describe(value: torch.Tensor | Shape) -> str:
    """``[3, 8] float32`` for a tensor, ``[3, 8]`` for a bare shape."""
    import torch

    if isinstance(value, torch.Tensor):
        return f"{list(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return str(list(value))


def listing(label: str, keys: Sequence[str]) -> str:
    """``label: a, b, c, ... (n in all)``, at most :data:`SHOWN` keys named."""
    more = f", ... ({len(keys)} in all)" if len(keys) > SHOWN else ""
    return f"{label}: {', '.join(keys[:SHOWN])}{more}"


def layout_problems(
    expected: Mapping[str, torch.Tensor | Shape],
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
) -> list[str]:
    """What keeps ``state`` from loading into a network whose state dict is ``expected``.

    ``expected`` maps keys to tensors (a module's ``state_dict()``, meta tensors are fine) or
    to shapes (a published layout).  Returns one phrase per kind of problem, empty when
    ``state`` fits: missing and unexpected keys (only when ``strict``), and mismatches of
    shape or of kind (floating point against integer, e.g. a BatchNorm's batch counter).
    """
    import torch

    def shape(value: torch.Tensor | Shape) -> tuple[int, ...]:
        return tuple(value.shape) if isinstance(value, torch.Tensor) else tuple(value)

    missing = sorted(set(expected) - set(state)) if strict else []
    unexpected = sorted(set(state) - set(expected)) if strict else []
    mismatched = []
    for key in sorted(set(expected) & set(state)):
        want, got = expected[key], state[key]
        wrong_kind = (
            isinstance(want, torch.Tensor) and want.is_floating_point() != got.is_floating_point()
        )
        if shape(want) != tuple(got.shape) or wrong_kind:
            mismatched.append(f"{key} {_describe(got)} vs {_describe(want)}")
    problems = []
    if missing:
        problems.append(listing(f"{len(missing)} missing", missing))
    if unexpected:
        problems.append(listing(f"{len(unexpected)} unexpected", unexpected))
    if mismatched:
        problems.append(
            listing(f"{len(mismatched)} of another shape or kind (file vs net)", mismatched)
        )
    return problems


def load_into(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    source: str | os.PathLike[str] = "weights",
) -> torch.nn.Module:
    """Fill ``module`` (typically built on the meta device) with ``state``'s tensors.

    Every tensor is converted on its own (floating point ones to ``dtype``, all to ``device``;
    ``None`` keeps them) and copied, then assigned to the module (``assign=True``): the
    weights exist once, not twice, and nothing stays tied to a memory-mapped file.  Integer
    tensors such as BatchNorm batch counters keep their dtype.  ``strict`` (the default)
    demands exactly the module's keys and shapes; ``strict=False`` ignores keys the module
    lacks and leaves its own tensors where the file has none, which only makes sense for a
    module that already holds real weights.  Returns ``module``; raises
    :class:`CheckpointError` naming ``source`` (the file), the module's class and every
    problem in one line.
    """
    name = type(module).__name__
    own = module.state_dict()
    problems = layout_problems(own, state, strict=strict)
    if problems:
        raise CheckpointError(f"{source}: does not fit {name} ({'; '.join(problems)})")
    converted = {}
    for key in [k for k in state if k in own]:
        tensor = state[key]
        target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
        converted[key] = tensor.to(device=device, dtype=target, copy=True)
    module.load_state_dict(converted, strict=strict, assign=True)
    on_meta = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if on_meta:
        empty = listing(f"{len(on_meta)} without values", on_meta)
        raise CheckpointError(f"{source}: left {name} incomplete ({empty})")
    return module
