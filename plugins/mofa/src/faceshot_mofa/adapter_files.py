"""Reading and writing the landmark adapter's weights folder (``ldmk_controlnet``).

The released folder holds ``config.json`` (upstream ``FlowControlNet``'s configuration) and
``diffusion_pytorch_model.safetensors``.  :func:`load_adapter` reads the config keys the adapter
has fields for, builds the adapter on the meta device and fills it strictly (every key and
shape must match); :func:`save_adapter` writes the same format (used for tiny test weights).
Every problem is one line: missing files are a
:class:`~faceshot_core.errors.MissingDependencyError`, unreadable or unfitting ones an
:class:`AdapterWeightsError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from faceshot_core.errors import FaceshotUserError, MissingDependencyError
from faceshot_mofa.adapter import AdapterConfig, LandmarkAdapterModules
from faceshot_mofa.landmark_adapter import DOWN_BLOCK_TYPES, LandmarkAdapter, check_config

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

_UP_BLOCK_TYPES = (
    "UpBlockSpatioTemporal",
    "CrossAttnUpBlockSpatioTemporal",
    "CrossAttnUpBlockSpatioTemporal",
    "CrossAttnUpBlockSpatioTemporal",
)

#: config.json key -> AdapterConfig field.  ``ldmk_embedding_out_channels`` is faceshot's own
#: (upstream hard-codes the landmark embedding's ladder); absent, the released ladder is used.
_CONFIG_FIELDS = {
    "in_channels": "in_channels",
    "block_out_channels": "block_out_channels",
    "num_attention_heads": "num_attention_heads",
    "layers_per_block": "layers_per_block",
    "cross_attention_dim": "cross_attention_dim",
    "addition_time_embed_dim": "addition_time_embed_dim",
    "projection_class_embeddings_input_dim": "projection_class_embeddings_input_dim",
    "num_frames": "num_frames",
    "conditioning_channels": "conditioning_channels",
    "conditioning_embedding_out_channels": "cond_embedding_channels",
    "ldmk_embedding_out_channels": "ldmk_embedding_channels",
    "occlusion_hourglass_channels": "hourglass_channels",
}
_TUPLE_FIELDS = {
    "hourglass_channels",
    "block_out_channels",
    "num_attention_heads",
    "cond_embedding_channels",
    "ldmk_embedding_channels",
}


class AdapterWeightsError(FaceshotUserError):
    """A landmark adapter folder whose config or weights cannot be read or do not fit."""


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return value


def config_from_dict(raw: Mapping[str, Any]) -> AdapterConfig:
    """An :class:`AdapterConfig` from a ``config.json`` mapping (released or saved here).

    Keys the adapter has no field for (``_class_name``, ``sample_size``, ``out_channels``, the
    up block types) are ignored; keys that describe a structure the forward pass cannot wire
    (other down block types, more transformer layers, per-block layer counts) are refused.
    Raises ``ValueError`` naming the key.
    """
    types = raw.get("down_block_types", DOWN_BLOCK_TYPES)
    if not isinstance(types, list | tuple) or tuple(types) != DOWN_BLOCK_TYPES:
        raise ValueError(f"down_block_types must be {list(DOWN_BLOCK_TYPES)}, got {types!r}")
    layers = raw.get("transformer_layers_per_block", 1)
    if layers != 1 and not (isinstance(layers, list | tuple) and all(x == 1 for x in layers)):
        raise ValueError(f"transformer_layers_per_block must be 1, got {layers!r}")
    fields: dict[str, Any] = {}
    for key, field in _CONFIG_FIELDS.items():
        if key not in raw:
            continue
        value = raw[key]
        if field in _TUPLE_FIELDS:
            if field == "num_attention_heads" and isinstance(value, int):
                value = [value] * len(DOWN_BLOCK_TYPES)
            if not isinstance(value, list | tuple):
                raise ValueError(f"{key} must be a list of integers, got {value!r}")
            fields[field] = tuple(_int(key, v) for v in value)
        else:
            fields[field] = _int(key, value)
    config = AdapterConfig(**fields)
    check_config(config)
    return config


def config_to_dict(config: AdapterConfig) -> dict[str, Any]:
    """``config.json`` content in the released ``FlowControlNet`` style, plus faceshot's
    ``ldmk_embedding_out_channels`` and ``occlusion_hourglass_channels`` (upstream hard-codes
    those ladders)."""
    out: dict[str, Any] = {
        "_class_name": "FlowControlNet",
        "sample_size": None,
        "out_channels": 4,
        "down_block_types": list(DOWN_BLOCK_TYPES),
        "up_block_types": list(_UP_BLOCK_TYPES),
        "transformer_layers_per_block": 1,
    }
    for key, field in _CONFIG_FIELDS.items():
        value = getattr(config, field)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _read_config(path: Path) -> AdapterConfig:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterWeightsError(f"cannot read landmark adapter config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise AdapterWeightsError(f"landmark adapter config {path} is not a JSON object")
    try:
        return config_from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise AdapterWeightsError(f"unsupported landmark adapter config {path}: {exc}") from exc


def _first(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _check_layout(path: Path, want: Mapping[str, tuple[int, ...]], got: Mapping[str, Any]) -> None:
    """One line naming what is missing, unexpected or misshapen, before any tensor is read."""
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    misshapen = [
        f"{k} {list(got[k])} (expected {list(want[k])})"
        for k in sorted(set(want) & set(got))
        if tuple(got[k]) != want[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    if misshapen:
        problems.append(f"{len(misshapen)} shape mismatches ({_first(misshapen)})")
    if problems:
        raise AdapterWeightsError(
            f"{path} does not fit the landmark adapter of its config.json: " + "; ".join(problems)
        )


def load_adapter(
    folder: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LandmarkAdapter:
    """The adapter from a released ``ldmk_controlnet`` folder (or one written by
    :func:`save_adapter`), in eval mode without gradients, on ``device`` in ``dtype``.

    The module is built on the meta device and the file's tensors are assigned to it one by
    one (converted on the way), so the weights exist once in memory, not twice.  Keys and
    shapes are checked against the config before anything is read.  Missing files raise
    :class:`~faceshot_core.errors.MissingDependencyError`; unreadable or unfitting ones
    :class:`AdapterWeightsError`.
    """
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    absent = [p.name for p in (config_path, weights_path) if not p.is_file()]
    if absent:
        raise MissingDependencyError(
            f"landmark adapter folder {folder} lacks {' and '.join(absent)} "
            "(expected MOFA-Video's ckpts/mofa/ldmk_controlnet)"
        )
    config = _read_config(config_path)
    with torch.device("meta"):
        adapter = LandmarkAdapter(config)
    want = {k: tuple(v.shape) for k, v in adapter.state_dict().items()}

    state: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(weights_path), framework="pt", device="cpu") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
            _check_layout(weights_path, want, shapes)
            for key in shapes:
                tensor = fh.get_tensor(key)
                target = dtype if tensor.is_floating_point() else tensor.dtype
                # Always a fresh copy: tensors read from the file sit at its byte offsets, and
                # misaligned weights make CPU matmuls take other (slower, differently
                # rounded) code paths.  One tensor at a time, so memory peaks at one extra.
                state[key] = tensor.to(device=device, dtype=target, copy=True)
                del tensor
    except (SafetensorError, OSError) as exc:
        raise AdapterWeightsError(
            f"cannot read landmark adapter weights {weights_path}: {exc}"
        ) from exc
    adapter.load_state_dict(state, strict=True, assign=True)
    del state
    return adapter.eval().requires_grad_(False)


def save_adapter(adapter: LandmarkAdapterModules, folder: str | Path) -> None:
    """Write ``config.json`` and ``diffusion_pytorch_model.safetensors`` into ``folder``
    (created if needed), in the released format and the adapter's own dtype."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config_to_dict(adapter.config), indent=2, sort_keys=True) + "\n"
    (folder / CONFIG_NAME).write_text(text, encoding="utf-8")
    state = {k: v.detach().to("cpu").contiguous() for k, v in adapter.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
