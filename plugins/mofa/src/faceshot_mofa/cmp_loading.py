"""Reading CMP's released checkpoint safely and loading it strictly.

The file (``ckpt_iter_42000.pth.tar``) is a ``torch.save`` pickle: ``{"step", "state_dict",
"optimizer"}``, with every key of ``state_dict`` prefixed ``module.`` (upstream wrapped the
network in a module that holds it as ``self.module``).  It is read with
``torch.load(weights_only=True)``, so a file carrying pickled code is refused before anything
in it runs.  Upstream loads it with ``strict=False`` and only prints missing keys; here every
key and shape must match (the released file matches exactly), because a silently half-loaded
CMP gives plausible-looking but wrong flows.  The optimizer state (about half the file) is
read by ``torch.load`` and dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from faceshot_core.checkpoints import (
    CheckpointError,
    read_torch_state_dict,
    split_prefixed,
)
from faceshot_core.checkpoints import layout_problems as _layout_problems

if TYPE_CHECKING:  # at run time imported where used: faceshot_mofa.cmp re-exports this module
    from faceshot_mofa.cmp import CMPConfig, SparseToDenseFlow

#: The released checkpoint's file name.
CHECKPOINT_NAME = "ckpt_iter_42000.pth.tar"

#: Prefix of every key in the released state dict.
PREFIX = "module."

#: The error every reading and loading problem raises (a one-line user-facing error).
CMPCheckpointError = CheckpointError


def read_cmp_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network's tensors from a CMP checkpoint file, keys without ``module.``.

    Accepts the released format (a dict with ``state_dict``; ``step`` and ``optimizer`` are
    ignored) and a bare state dict (only tensors).  Tensors are on the CPU.  Read safely by
    :func:`faceshot_core.checkpoints.read_torch_state_dict` (``weights_only``: pickled code
    is refused, never run).
    """
    state = read_torch_state_dict(path, what="CMP checkpoint", nested="state_dict", mmap=False)
    prefixed = split_prefixed(state, PREFIX)
    return {**{k: v for k, v in state.items() if not k.startswith(PREFIX)}, **prefixed}


def layout_problems(network: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly into ``network``; empty when it fits."""
    return _layout_problems(network.state_dict(), state)


def config_from_state_dict(state: Mapping[str, torch.Tensor]) -> CMPConfig:
    """The :class:`~faceshot_mofa.cmp.CMPConfig` whose network has ``state``'s shapes.

    Widths come from the output channels of each stage's first convolution, block counts from
    the highest block index, ``nbins`` from the head; ``fmax`` cannot be read and stays 50.
    The released file gives the default config.  A state dict too incomplete to read gives the
    default config as well, so that loading then reports what is missing.
    """
    from faceshot_mofa.cmp import CMPConfig

    def width(key: str) -> int:
        return int(state[key].shape[0])

    enc, dec = "image_encoder", "flow_decoder"
    try:
        blocks = tuple(
            1 + max(int(k.split(".")[2]) for k in state if k.startswith(f"{enc}.layer{i}."))
            for i in range(1, 5)
        )
        return CMPConfig(
            stem_channels=width(f"{enc}.conv1.weight"),
            stage_widths=tuple(width(f"{enc}.layer{i}.0.conv1.weight") for i in range(1, 5)),
            stage_blocks=blocks,
            image_channels=width(f"{enc}.conv5.weight"),
            sparse_hidden=width("flow_encoder.features.0.weight"),
            sparse_channels=width("flow_encoder.features.4.weight"),
            branch_channels=width(f"{dec}.decoder1.0.weight"),
            fusion8_channels=width(f"{dec}.fusion8.0.weight"),
            skip4_channels=width(f"{dec}.skipconv4.0.weight"),
            fusion4_channels=width(f"{dec}.fusion4.0.weight"),
            skip2_channels=width(f"{dec}.skipconv2.0.weight"),
            fusion2_channels=width(f"{dec}.fusion2.0.weight"),
            nbins=width(f"{dec}.head.weight") // 2,
        )
    except (KeyError, ValueError, IndexError):
        return CMPConfig()


def load_cmp(
    path: str | os.PathLike[str],
    config: CMPConfig | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SparseToDenseFlow:
    """CMP with the weights of ``path``, in eval mode, without gradients, on ``device``/``dtype``.

    ``config``: ``None`` reads the widths from the file (:func:`config_from_state_dict`; the
    released file gives the released config, a tiny test file a tiny one); a given config is
    insisted on.  Raises :class:`CMPCheckpointError` when the file is missing, unreadable
    (truncated, corrupt), carries pickled code (refused, not run), or does not fit the network
    exactly (all missing/unexpected keys and shape mismatches in one message).  Upstream ran
    CMP in float32 even in its float16 pipeline; keep ``dtype`` at float32 to match it (the
    network is small: 28.5M parameters).
    """
    from faceshot_mofa.cmp import SparseToDenseFlow

    state = read_cmp_state_dict(path)
    if config is None:
        config = config_from_state_dict(state)
    with torch.device("meta"):  # no random init: every tensor is replaced by the file's
        network = SparseToDenseFlow(config)
    problems = layout_problems(network, state)
    if problems:
        raise CMPCheckpointError(f"{path}: does not fit CMP's layout ({'; '.join(problems)})")
    network.load_state_dict(state, strict=True, assign=True)
    network.requires_grad_(False)
    return network.to(device=device, dtype=dtype).eval()
