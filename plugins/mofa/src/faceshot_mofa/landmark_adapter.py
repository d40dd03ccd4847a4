"""The landmark adapter's forward pass, and reading / writing its weights.

The adapter (upstream ``FlowControlNet``) is a ControlNet whose encoder is the SVD UNet's down
path.  Besides the noisy latents it sees three conditions:

* the **reference image**, embedded to the first block's width at 1/8 and carried to 1/16,
  1/32 and 1/64 by ``flow_encoder``.  Every frame m >= 1 gets these features *forward-warped*
  along its dense flow (frames 1..F-1 relative to frame 0), mended by the scale's occlusion
  module and passed through the scale's ``zero_outs`` convolution.  Frame 0 *is* the reference,
  so it gets the raw features: no warp, no occlusion module, no ``zero_outs``;
* the **landmark images** (one per frame), embedded to the first block's width at 1/8 and
  subsampled once by 2 for 1/16 (upstream also makes a 1/32 copy that it never uses);
* the usual time step, CLIP embedding and added time ids.

Where the features enter (checked by running the upstream code; see the project's MOFA notes):
after ``conv_in`` the 1/8 warped + 1/8 landmark features; after down block 0 the 1/16 warped +
1/16 landmark; after block 1 the 1/32 warped; after blocks 2 and 3 the 1/64 warped each; and
before the mid block the 1/64 warped once more.  The residuals handed to the UNet are the
``conv_in`` output *after* its injection, then each block's own outputs; a block's last output
is captured *before* that block's injection.  All of this is odd but the released weights were
trained with it, so it is reproduced exactly.

Spatial subsampling takes every s-th pixel (``x[..., ::s, ::s]``), which is what upstream's
nearest ``interpolate(scale_factor=1/s)`` picks when the size is a multiple of s, and which
also yields the ceil-sized maps the stride-2 convolutions produce for other sizes.

Weights: :func:`load_adapter` reads the released ``ldmk_controlnet`` folder
(``config.json`` + ``diffusion_pytorch_model.safetensors``) strictly; :func:`save_adapter`
writes the same format (used for tiny test weights).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from faceshot_core.errors import FaceshotUserError, MissingDependencyError
from faceshot_mofa.adapter import SCALES, AdapterConfig, LandmarkAdapterModules
from faceshot_mofa.splatting import splat_average

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

#: The only block layout the adapter supports (SVD's; the injections are tied to it).
DOWN_BLOCK_TYPES = (
    "CrossAttnDownBlockSpatioTemporal",
    "CrossAttnDownBlockSpatioTemporal",
    "CrossAttnDownBlockSpatioTemporal",
    "DownBlockSpatioTemporal",
)
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


def tiny_adapter_config() -> AdapterConfig:
    """A small configuration for fast tests, with the released structure (12 residuals).

    The fields that the SVD UNet shares (block widths, heads, cross-attention width, added time
    embedding) are chosen so that a tiny ``UNetSpatioTemporalConditionModel`` built with the
    same values takes this adapter's residuals.  Widths are multiples of 32 because the
    diffusers blocks use 32-group GroupNorm; block 2 and block 3 have the same width because
    the 1/64 feature is injected after both.
    """
    return AdapterConfig(
        block_out_channels=(32, 64, 64, 64),
        num_attention_heads=(2, 4, 4, 4),
        layers_per_block=2,
        cross_attention_dim=32,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        cond_embedding_channels=(8, 8, 16, 16),
        ldmk_embedding_channels=(8, 8, 16, 16),
        hourglass_channels=(16, 32, 64),
    )


def check_config(config: AdapterConfig) -> None:
    """Raise ``ValueError`` unless the forward pass can wire ``config``.

    The injections are tied to SVD's four-block layout: 1/16 features enter after block 0 at
    its width, 1/32 after block 1, 1/64 after blocks 2 and 3 (so those two must share a width)
    and the time ids are three values each embedded to ``addition_time_embed_dim``.
    """
    widths = config.block_out_channels
    if len(widths) != 4 or len(config.num_attention_heads) != 4:
        raise ValueError(f"the adapter needs 4 blocks and 4 head counts, got {config}")
    if widths[2] != widths[3]:
        raise ValueError(f"blocks 2 and 3 must have the same width, got {widths}")
    if config.projection_class_embeddings_input_dim != 3 * config.addition_time_embed_dim:
        raise ValueError(
            "projection_class_embeddings_input_dim must be 3 * addition_time_embed_dim "
            f"(three time ids), got {config.projection_class_embeddings_input_dim} and "
            f"{config.addition_time_embed_dim}"
        )


def _block(block: Any, cross: torch.Tensor, **kwargs: Any) -> Any:
    """Call a diffusers SVD block, passing the CLIP embedding only to blocks that attend to it."""
    if getattr(block, "has_cross_attention", False):
        kwargs["encoder_hidden_states"] = cross
    return block(**kwargs)


class LandmarkAdapter(LandmarkAdapterModules):
    """The landmark adapter with its forward pass; see the module docstring for the wiring."""

    def __init__(self, config: AdapterConfig | None = None) -> None:
        check_config(config or AdapterConfig())
        super().__init__(config)

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype; inputs are cast to it (the flow is only cast where it is a
        network input, see :meth:`warped_features`)."""
        return self.conv_in.weight.dtype

    def warped_features(self, reference: torch.Tensor, flow: torch.Tensor) -> list[torch.Tensor]:
        """The reference features for every frame, at 1/8, 1/16, 1/32 and 1/64.

        ``reference`` [B, 3, H, W] in [-1, 1]; ``flow`` [B, F-1, 2, H, W] in pixels of H x W.
        Returns four tensors [B * F, C_s, H_s, W_s] (one batch item's frames consecutive, as
        the UNet flattens them).  Frame 0 carries the raw features; frames 1.. the features
        splatted along their flow (subsampled and divided by the scale, so it is in pixels of
        that scale), mended by ``occlusions[s]`` and projected by ``zero_outs[s]``.

        The splatting runs on the flow as given (float32 accumulation inside
        :func:`~faceshot_mofa.splatting.splat_average`); only the occlusion module's flow input
        is cast to the weights' dtype.  Upstream casts the whole flow to the weights' dtype
        first; dividing by a power of two commutes with that rounding, so the network inputs
        are the same and a float32 flow only makes the splat targets more exact.
        """
        batch, moving = flow.shape[:2]
        base = self.controlnet_cond_embedding(reference.to(self.dtype))
        per_scale: list[torch.Tensor] = []
        for scale, feature in zip(SCALES, self.flow_encoder(base), strict=True):
            if moving == 0:
                per_scale.append(feature)
                continue
            scaled = flow[..., ::scale, ::scale].flatten(0, 1) / scale
            if scaled.shape[-2:] != feature.shape[-2:]:
                raise ValueError(
                    f"flow {tuple(flow.shape)} does not match the 1/{scale} features "
                    f"{tuple(feature.shape)}"
                )
            # One copy of the reference feature per moving frame, as splatting needs a batch.
            source = feature.repeat_interleave(moving, dim=0)
            warped = splat_average(source, scaled)
            mended = self.occlusions[str(scale)](source, scaled.to(self.dtype), warped)
            del warped, source
            moved = self.zero_outs[str(scale)](mended).unflatten(0, (batch, moving))
            del mended
            per_scale.append(torch.cat([feature[:, None], moved], dim=1).flatten(0, 1))
        return per_scale

    def landmark_features(self, landmark_images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Landmark images [B, F, 3, H, W] in [0, 1] -> features [B * F, C, H/8, W/8] and the
        same subsampled by 2 (nearest, as upstream), the two scales that are injected."""
        embedded = self.controlnet_ldmk_embedding(landmark_images.flatten(0, 1).to(self.dtype))
        return embedded, embedded[..., ::2, ::2]

    def _embedding(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        added_time_ids: torch.Tensor,
    ) -> torch.Tensor:
        """Time + added-time embedding [B * F, 4 C0], exactly as the SVD UNet computes it."""
        batch, frames = sample.shape[:2]
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1)[:1].expand(batch) if t.numel() == 1 else t.reshape(batch)
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        added = self.add_time_proj(added_time_ids.flatten()).reshape(batch, -1).to(emb.dtype)
        return (emb + self.add_embedding(added)).repeat_interleave(frames, dim=0)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        reference: torch.Tensor,
        flow: torch.Tensor,
        landmark_images: torch.Tensor,
        conditioning_scale: float = 1.0,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The adapter's residuals for :func:`faceshot_mofa.unet.unet_forward`.

        ``sample`` [B, F, 8, h, w] (noisy latents ++ image latents, as the UNet gets them);
        ``timestep`` a scalar or [B]; ``encoder_hidden_states`` [B, 1, D]; ``added_time_ids``
        [B, 3]; ``reference`` [B, 3, 8h, 8w] in [-1, 1]; ``flow`` [B, F-1, 2, 8h, 8w], frames
        1..F-1 relative to frame 0 in pixels; ``landmark_images`` [B, F, 3, 8h, 8w] in [0, 1].

        Returns the 12 down residuals [B * F, C_i, h_i, w_i] and the mid residual
        [B * F, C, h/8, w/8], already multiplied by ``conditioning_scale``.
        """
        self._check_inputs(sample, reference, flow, landmark_images)
        batch, frames = sample.shape[:2]
        dtype = self.dtype
        sample = sample.to(dtype)
        emb = self._embedding(sample, timestep, added_time_ids)
        cross = encoder_hidden_states.to(dtype).repeat_interleave(frames, dim=0)
        indicator = torch.zeros(batch, frames, dtype=dtype, device=sample.device)

        warped = self.warped_features(reference, flow)
        landmarks = self.landmark_features(landmark_images)

        # Additions in upstream's order (latent + warped, then + landmark) for identical rounding.
        x = self.conv_in(sample.flatten(0, 1)) + warped[0] + landmarks[0]
        skips = [x]
        for k, block in enumerate(self.down_blocks):
            x, res = _block(block, cross, hidden_states=x, temb=emb, image_only_indicator=indicator)
            skips.extend(res)  # captured before this block's injection
            x = x + warped[min(k + 1, len(warped) - 1)]
            if k == 0:
                x = x + landmarks[1]
        del landmarks
        x = x + warped[-1]  # the 1/64 feature again: the mid block receives it twice
        del warped
        x = _block(self.mid_block, cross, hidden_states=x, temb=emb, image_only_indicator=indicator)

        down = [conv(s) for conv, s in zip(self.controlnet_down_blocks, skips, strict=True)]
        mid = self.controlnet_mid_block(x)
        if conditioning_scale != 1.0:
            down = [d * conditioning_scale for d in down]
            mid = mid * conditioning_scale
        return down, mid

    def _check_inputs(
        self,
        sample: torch.Tensor,
        reference: torch.Tensor,
        flow: torch.Tensor,
        landmark_images: torch.Tensor,
    ) -> None:
        """Shape errors here name the mismatch; deep inside the blocks they would not."""
        if sample.dim() != 5 or sample.shape[2] != self.config.in_channels:
            raise ValueError(
                f"sample must be [B, F, {self.config.in_channels}, h, w], got {tuple(sample.shape)}"
            )
        b, f, _, h, w = sample.shape
        want = {
            "reference": ((b, 3, 8 * h, 8 * w), reference),
            "flow": ((b, f - 1, 2, 8 * h, 8 * w), flow),
            "landmark_images": ((b, f, 3, 8 * h, 8 * w), landmark_images),
        }
        for name, (shape, tensor) in want.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(
                    f"{name} must be {list(shape)} for sample {tuple(sample.shape)}, "
                    f"got {tuple(tensor.shape)}"
                )


# --------------------------------------------------------------------------- weights


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
