"""AniPortrait's released weights: where each network's tensors come from, and strict loading.

Two distributions of the same weights are read:

* the release (``ZJYang/AniPortrait``): plain ``torch.save`` state dicts in fp32, no key
  prefix, diffusers-0.24 key names - ``pose_guider.pth``, ``reference_unet.pth``,
  ``denoising_unet.pth`` (the UNet without its motion modules) and ``motion_module.pth`` (only
  the motion modules).  They are read with ``torch.load(weights_only=True)`` (a file holding
  pickled code is refused before it runs) and memory-mapped;
* the diffusers-format repackaging (``benjamin-paine/aniportrait``): one
  ``aniportrait.safetensors`` whose keys carry the component as a prefix (``pose_guider.``,
  ``reference_unet.``, ``denoising_unet.``, ``vae.``, ``image_encoder.``), or one folder per
  component.  ASSUMPTION, not checked against the real files (not available here): after the
  prefix is removed, and inside a component folder, the keys and shapes are the release's,
  with the motion modules merged into ``denoising_unet``.  Strict loading reports any
  difference key by key, so a wrong assumption shows up as a clear error, not as bad video.

Every network is built on the meta device and filled strictly (no key missing, none left
over, every shape equal), with one-line errors (:class:`faceshot_core.checkpoints.
CheckpointError`).  Upstream loads the denoising UNet non-strictly from ``denoising_unet.pth``
over the motion modules; :func:`denoising_state_dict` merges the two the same way and then
insists that the result is the complete released layout (:func:`denoising_layout`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from faceshot_aniportrait.pose_guider import PoseGuider, PoseGuiderConfig
from faceshot_aniportrait.reference_unet import SD15_UNET_CONFIG, build_reference_unet
from faceshot_core.checkpoints import (
    CheckpointError,
    layout_problems,
    load_into,
    read_safetensors,
    read_torch_state_dict,
    safetensors_keys,
)

#: The release's file of each network.
RELEASED_FILES = {
    "pose_guider": "pose_guider.pth",
    "reference_unet": "reference_unet.pth",
    "denoising_unet": "denoising_unet.pth",
    "motion_module": "motion_module.pth",
}
#: The diffusers-format repackaging's single file, and its components (= key prefixes).
SINGLE_FILE = "aniportrait.safetensors"
COMPONENTS = ("pose_guider", "reference_unet", "denoising_unet", "vae", "image_encoder")
#: Weight files looked for in a component folder, in this order (diffusers, then transformers).
FOLDER_WEIGHTS = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "diffusion_pytorch_model.fp16.safetensors",
    "model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)
#: Substring marking the motion modules' keys (how upstream splits the two UNet files).
MOTION_KEY = "motion_module"

#: Tensors by key, or where to read them: a file or a folder (see :func:`read_component`).
Source = Mapping[str, torch.Tensor] | str | os.PathLike[str]


def _what(component: str) -> str:
    return f"AniPortrait {component.replace('_', ' ')} weights"


def _read_safetensors_file(path: Path, component: str) -> dict[str, torch.Tensor]:
    """A component's tensors from a safetensors file: a file whose keys carry component
    prefixes (``aniportrait.safetensors``) gives the keys under ``component``'s, any other
    file (a component folder's) is read whole."""
    keys = safetensors_keys(path, what=_what(component))
    combined = any(k.startswith(tuple(f"{c}." for c in COMPONENTS)) for k in keys)
    return read_safetensors(path, prefix=f"{component}." if combined else "", what=_what(component))


def _read_folder(folder: Path, component: str) -> dict[str, torch.Tensor]:
    for name in FOLDER_WEIGHTS:
        path = folder / name
        if path.is_file():
            if name.endswith(".bin"):
                return read_torch_state_dict(path, what=_what(component))
            return _read_safetensors_file(path, component)
    raise CheckpointError(f"{folder}: no weights file (looked for {', '.join(FOLDER_WEIGHTS)})")


def read_component(source: str | os.PathLike[str], component: str) -> dict[str, torch.Tensor]:
    """The tensors of ``component`` (one of :data:`COMPONENTS`) from a file or a folder.

    ``source`` may be: a weights file (``.pth``/``.pt``/``.bin`` state dict, or a
    ``.safetensors`` file - prefixed keys such as ``aniportrait.safetensors`` are split, a
    component's own file is read whole); or a folder holding, looked for in this order, the
    release's file(s) (``denoising_unet`` merges ``denoising_unet.pth`` and
    ``motion_module.pth``, see :func:`merge_denoising_states`), a component folder of the
    diffusers-format repackaging, or ``aniportrait.safetensors``.  Raises
    :class:`~faceshot_core.checkpoints.CheckpointError` naming what was looked for.
    """
    if component not in COMPONENTS:
        raise ValueError(f"unknown AniPortrait component {component!r}; one of {COMPONENTS}")
    what, path = _what(component), Path(source)
    if path.is_file():
        if path.name.endswith((".safetensors", ".index.json")):
            return _read_safetensors_file(path, component)
        return read_torch_state_dict(path, what=what)
    if not path.is_dir():
        raise CheckpointError(f"{path}: {what} not found (no such file or folder)")
    released = path / RELEASED_FILES.get(component, f"{component}.pth")
    if released.is_file():
        state = read_torch_state_dict(released, what=what)
        if component != "denoising_unet":
            return state
        motion = path / RELEASED_FILES["motion_module"]
        return merge_denoising_states(
            state, read_torch_state_dict(motion, what=_what("motion_module"))
        )
    if (path / component).is_dir():
        return _read_folder(path / component, component)
    if (path / SINGLE_FILE).is_file():
        return _read_safetensors_file(path / SINGLE_FILE, component)
    raise CheckpointError(
        f"{path}: no {what} (looked for {released.name}, a {component}/ folder and {SINGLE_FILE})"
    )


def _state(source: Source, component: str) -> tuple[Mapping[str, torch.Tensor], str]:
    if isinstance(source, Mapping):
        return source, _what(component)
    return read_component(source, component), str(source)


# --- the denoising UNet's two files --------------------------------------------------------------


def motion_module_layout(
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
    layers_per_block: int = 2,
    max_frames: int = 32,
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the released motion modules (``motion_module.pth``, 588 tensors).

    One "Vanilla" temporal transformer per motion module: two temporal self-attentions
    (no q/k/v bias, positional-encoding buffer ``pe`` of ``max_frames`` frames), GEGLU
    feed-forward (x4), and linear ``proj_in``/``proj_out`` at the block's width.  Motion
    modules sit after each resnet: ``layers_per_block`` per down block, one in the mid block,
    ``layers_per_block + 1`` per up block (widths reversed).
    """

    def module(c: int) -> dict[str, tuple[int, ...]]:
        block = "temporal_transformer.transformer_blocks.0."
        shapes: dict[str, tuple[int, ...]] = {
            "temporal_transformer.norm.weight": (c,),
            "temporal_transformer.norm.bias": (c,),
            "temporal_transformer.proj_in.weight": (c, c),
            "temporal_transformer.proj_in.bias": (c,),
        }
        for i in range(2):
            att = f"{block}attention_blocks.{i}."
            shapes.update({f"{att}to_{x}.weight": (c, c) for x in "qkv"})
            shapes.update({f"{att}to_out.0.weight": (c, c), f"{att}to_out.0.bias": (c,)})
            shapes[f"{att}pos_encoder.pe"] = (1, max_frames, c)
        for i in range(2):
            shapes.update({f"{block}norms.{i}.weight": (c,), f"{block}norms.{i}.bias": (c,)})
        shapes.update({
            f"{block}ff.net.0.proj.weight": (8 * c, c), f"{block}ff.net.0.proj.bias": (8 * c,),
            f"{block}ff.net.2.weight": (c, 4 * c), f"{block}ff.net.2.bias": (c,),
            f"{block}ff_norm.weight": (c,), f"{block}ff_norm.bias": (c,),
            "temporal_transformer.proj_out.weight": (c, c),
            "temporal_transformer.proj_out.bias": (c,),
        })  # fmt: skip
        return shapes

    places = [(f"down_blocks.{i}", c, layers_per_block) for i, c in enumerate(block_out_channels)]
    places += [(f"up_blocks.{i}", c, layers_per_block + 1)
               for i, c in enumerate(reversed(block_out_channels))]  # fmt: skip
    places.append(("mid_block", block_out_channels[-1], 1))
    return {
        f"{where}.motion_modules.{j}.{key}": shape
        for where, c, count in places
        for j in range(count)
        for key, shape in module(c).items()
    }


def denoising_layout(config: Mapping[str, Any] | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the complete released denoising UNet (1,274 tensors at SD 1.5).

    Its non-motion part is exactly diffusers' 2D ``UNet2DConditionModel`` at the same
    configuration, head included (the 3D blocks keep the 2D key names and shapes); the motion
    part is :func:`motion_module_layout`.  ``config``: a UNet config such as
    :data:`~faceshot_aniportrait.reference_unet.SD15_UNET_CONFIG` (the default).
    """
    if config is None:
        return dict(_sd15_denoising_layout())
    cfg = dict(config)
    with torch.device("meta"):
        unet: Any = UNet2DConditionModel(**cfg)  # untyped for mypy
    layout = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    layout.update(motion_module_layout(tuple(cfg["block_out_channels"]), cfg["layers_per_block"]))
    return layout


@functools.cache
def _sd15_denoising_layout() -> dict[str, tuple[int, ...]]:
    """:func:`denoising_layout` at SD 1.5, built once (a meta UNet takes a few tenths of a s)."""
    return denoising_layout(SD15_UNET_CONFIG)


def merge_denoising_states(
    denoising_state: Mapping[str, torch.Tensor], motion_state: Mapping[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Upstream's merge of the denoising UNet's two files, unchecked.

    The keys containing ``motion_module`` from ``motion_state`` (others are ignored), then
    every tensor of ``denoising_state`` on top, as upstream's two non-strict loads leave them
    (``motion_state`` may be ``None`` for a state with the motion modules merged in already).
    """
    merged = {k: v for k, v in (motion_state or {}).items() if MOTION_KEY in k}
    merged.update(denoising_state)
    return merged


def denoising_state_dict(
    denoising_state: Mapping[str, torch.Tensor],
    motion_state: Mapping[str, torch.Tensor] | None,
    *,
    expected: Mapping[str, Any] | None = None,
    source: str = "AniPortrait denoising UNet weights",
) -> dict[str, torch.Tensor]:
    """The denoising UNet's complete state dict from its two released files.

    Merged as upstream does (:func:`merge_denoising_states`).  Upstream then loads
    non-strictly over Stable Diffusion 1.5's weights; here the result must be the complete
    layout instead: ``expected`` (a module's ``state_dict()`` or key -> shape; by default
    :func:`denoising_layout` at SD 1.5), so that a missing, extra or misshapen tensor is an
    error naming ``source`` rather than a silently different network.
    """
    merged = merge_denoising_states(denoising_state, motion_state)
    problems = layout_problems(denoising_layout() if expected is None else expected, merged)
    if problems:
        raise CheckpointError(f"{source}: does not fit the denoising UNet ({'; '.join(problems)})")
    return merged


# --- loaders --------------------------------------------------------------------------------------


def load_pose_guider(
    source: Source,
    config: PoseGuiderConfig | None = None,
    *,
    batch_statistics: bool = True,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PoseGuider:
    """The PoseGuider with ``source``'s weights (a state dict, a file or a folder, see
    :func:`read_component`), without gradients, on ``device`` in ``dtype``.

    ``batch_statistics``: see :mod:`faceshot_aniportrait.pose_guider` (the default reproduces
    the released pipeline).  BatchNorm batch counters stay integers.
    """
    state, label = _state(source, "pose_guider")
    with torch.device("meta"):
        guider = PoseGuider(config, batch_statistics=batch_statistics)
    load_into(guider, state, dtype=dtype, device=device, source=label)
    return guider.eval().requires_grad_(False)


def load_reference_unet(
    source: Source,
    config: Mapping[str, Any] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> UNet2DConditionModel:
    """The head-less reference UNet (SD 1.5 ``config`` by default) with ``source``'s weights,
    in eval mode without gradients, on ``device`` in ``dtype``."""
    state, label = _state(source, "reference_unet")
    with torch.device("meta"):
        unet: Any = build_reference_unet(dict(config) if config is not None else None)
    load_into(unet, state, dtype=dtype, device=device, source=label)
    unet.eval().requires_grad_(False)
    result: UNet2DConditionModel = unet
    return result


def load_denoising_unet(
    module: nn.Module,
    source: Source,
    motion: Source | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Fill the 3D denoising UNet ``module`` (best built on the meta device) strictly.

    ``source``: a folder (read by :func:`read_component`, the motion modules included), or
    the denoising UNet's own tensors or file; ``motion``: the motion modules' tensors or file
    when ``source`` lacks them (``motion_module.pth``).  The merged state must match
    ``module`` exactly (:func:`denoising_state_dict`).  Returns ``module`` in eval mode
    without gradients.
    """
    state, label = _state(source, "denoising_unet")
    motion_state = None
    if motion is not None:
        motion_state = (
            motion if isinstance(motion, Mapping)
            else read_torch_state_dict(motion, what=_what("motion_module"))
        )  # fmt: skip
        label = f"{label} + {motion if not isinstance(motion, Mapping) else 'motion modules'}"
    merged = denoising_state_dict(state, motion_state, expected=module.state_dict(), source=label)
    load_into(module, merged, dtype=dtype, device=device, source=label)
    return module.eval().requires_grad_(False)
