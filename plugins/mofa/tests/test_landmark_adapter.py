"""The landmark adapter's forward pass and its weight files, on the tiny configuration.

The wiring checked here (frame 0 unwarped, where each feature is injected, which residuals are
captured before an injection) is the one measured on the upstream code; the full-size adapter
was also compared with upstream's ``FlowControlNet`` (same random weights, CPU, float32 and
bfloat16) and matched bit for bit, which cannot run here (it needs the upstream sources).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as nnf
from faceshot_mofa.adapter import SCALES, AdapterConfig
from faceshot_mofa.adapter_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    AdapterWeightsError,
    config_from_dict,
    load_adapter,
    save_adapter,
)
from faceshot_mofa.landmark_adapter import LandmarkAdapter, tiny_adapter_config
from faceshot_mofa.splatting import splat_average
from faceshot_mofa.unet import unet_forward
from safetensors.torch import load_file, save_file

from faceshot_core.errors import FaceshotUserError, MissingDependencyError

B, F, H_LAT, W_LAT = 2, 3, 16, 8  # latent 16 x 8 (not square, so x and y cannot be swapped)
H, W = 8 * H_LAT, 8 * W_LAT

#: ``config.json`` of the released ``ldmk_controlnet`` (as FlowControlNet's config records it).
RELEASED_CONFIG: dict[str, Any] = {
    "_class_name": "FlowControlNet",
    "_diffusers_version": "0.24.0",
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    ],
    "up_block_types": [
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    ],
    "block_out_channels": [320, 640, 1280, 1280],
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [5, 10, 10, 20],
    "num_frames": 25,
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
}


def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Fresh ControlNet parts are zero-initialised, which would hide every path; give all
    matrices fan-in-scaled noise and the all-zero vectors small noise."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            elif not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.fixture(scope="module")
def adapter() -> LandmarkAdapter:
    torch.manual_seed(0)
    module = LandmarkAdapter(tiny_adapter_config()).eval()
    _randomize(module, 1)
    # As load_adapter returns it: on CPU, whether a weight requires grad changes which matmul
    # path a 3-D linear takes (and so the last bit), even under no_grad.
    return module.requires_grad_(False)


def _inputs(frames: int = F, seed: int = 2, h: int = H_LAT, w: int = W_LAT) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    cfg = tiny_adapter_config()
    return {
        "sample": torch.randn(B, frames, 8, h, w, generator=gen),
        "timestep": torch.tensor(3.5),
        "encoder_hidden_states": torch.randn(B, 1, cfg.cross_attention_dim, generator=gen),
        "added_time_ids": torch.tensor([[6.0, 128.0, 0.02]] * B),
        "reference": torch.rand(B, 3, 8 * h, 8 * w, generator=gen) * 2 - 1,
        "flow": torch.randn(B, frames - 1, 2, 8 * h, 8 * w, generator=gen) * 6,
        "landmark_images": torch.rand(B, frames, 3, 8 * h, 8 * w, generator=gen),
    }


@pytest.fixture(scope="module")
def inputs() -> dict[str, Any]:
    return _inputs()


@pytest.fixture(scope="module")
def outputs(
    adapter: LandmarkAdapter, inputs: dict[str, Any]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    with torch.no_grad():
        return adapter(**inputs)


def _assert_same(
    got: tuple[list[torch.Tensor], torch.Tensor], want: tuple[list[torch.Tensor], torch.Tensor]
) -> None:
    assert len(got[0]) == len(want[0])
    for a, b in zip([*got[0], got[1]], [*want[0], want[1]], strict=True):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- forward


def test_residuals_have_the_unet_skip_shapes(
    outputs: tuple[list[torch.Tensor], torch.Tensor],
) -> None:
    down, mid = outputs
    c0, c1, c2, c3 = tiny_adapter_config().block_out_channels
    n = B * F
    want = [(n, c0, 16, 8)] * 3 + [(n, c0, 8, 4)]
    want += [(n, c1, 8, 4)] * 2 + [(n, c1, 4, 2)]
    want += [(n, c2, 4, 2)] * 2 + [(n, c2, 2, 1)]
    want += [(n, c3, 2, 1)] * 2
    assert [tuple(d.shape) for d in down] == want
    assert tuple(mid.shape) == (n, c3, 2, 1)
    assert all(torch.isfinite(t).all() for t in [*down, mid])


def test_frame_zero_gets_the_raw_reference_features(
    adapter: LandmarkAdapter, inputs: dict[str, Any]
) -> None:
    """Frame 0 is the reference itself: no warp, no occlusion module, no ``zero_outs``."""
    with torch.no_grad():
        warped = adapter.warped_features(inputs["reference"], inputs["flow"])
        raw = adapter.flow_encoder(adapter.controlnet_cond_embedding(inputs["reference"]))
    assert len(warped) == len(raw) == len(SCALES)
    for feature, base in zip(warped, raw, strict=True):
        per_frame = feature.unflatten(0, (B, F))
        assert torch.equal(per_frame[:, 0], base)
        assert not torch.allclose(per_frame[:, 1], base)  # the moving frames are not


def test_moving_frames_are_splatted_mended_and_projected(
    adapter: LandmarkAdapter, inputs: dict[str, Any]
) -> None:
    """Hooks read what each occlusion module receives: only the F-1 moving frames, the flow
    subsampled and divided by the scale, and the reference splatted along it; its output goes
    through ``zero_outs``."""
    seen: dict[int, tuple[torch.Tensor, ...]] = {}
    hooks = [
        adapter.occlusions[str(s)].register_forward_hook(
            lambda _m, args, out, s=s: seen.__setitem__(s, (*args, out))
        )
        for s in SCALES
    ]
    try:
        with torch.no_grad():
            warped = adapter.warped_features(inputs["reference"], inputs["flow"])
            raw = adapter.flow_encoder(adapter.controlnet_cond_embedding(inputs["reference"]))
    finally:
        for hook in hooks:
            hook.remove()
    flow = inputs["flow"]
    for k, s in enumerate(SCALES):
        reference, flow_in, splatted, mended = seen[s]
        want_flow = nnf.interpolate(flow.flatten(0, 1), scale_factor=1 / s) / s  # upstream's
        torch.testing.assert_close(flow_in, want_flow, rtol=0, atol=0)
        assert torch.equal(reference, raw[k].repeat_interleave(F - 1, dim=0))
        assert torch.equal(splatted, splat_average(reference, want_flow))
        with torch.no_grad():
            moved = adapter.zero_outs[str(s)](mended).unflatten(0, (B, F - 1))
        assert torch.equal(warped[k].unflatten(0, (B, F))[:, 1:], moved)


def test_zero_flow_moves_nothing(adapter: LandmarkAdapter, inputs: dict[str, Any]) -> None:
    """With a zero flow every frame's splat is the reference feature itself (up to the 1e-7 of
    the average), so what reaches the occlusion module is the same for all frames."""
    splats: list[torch.Tensor] = []
    hook = adapter.occlusions["8"].register_forward_hook(
        lambda _m, args, _out: splats.append(args[2])
    )
    try:
        with torch.no_grad():
            adapter.warped_features(inputs["reference"], torch.zeros_like(inputs["flow"]))
            base = adapter.controlnet_cond_embedding(inputs["reference"])
    finally:
        hook.remove()
    torch.testing.assert_close(splats[0], base.repeat_interleave(F - 1, dim=0))


def test_injections_and_captured_residuals_follow_upstream_order(
    adapter: LandmarkAdapter, inputs: dict[str, Any], outputs: tuple[list[torch.Tensor], Any]
) -> None:
    """Hooks read each block's input and output; the inputs must be the previous output plus
    exactly the documented features, and residual 0 is taken after its injection while the
    last output of each block is taken before."""
    block_in: list[torch.Tensor] = []
    block_out: list[Any] = []
    stem: list[torch.Tensor] = []
    blocks = [*adapter.down_blocks, adapter.mid_block]
    hooks = [adapter.conv_in.register_forward_hook(lambda _m, _a, out: stem.append(out))]
    for block in blocks:
        hooks.append(
            block.register_forward_pre_hook(
                lambda _m, _a, kw: block_in.append(kw["hidden_states"]), with_kwargs=True
            )
        )
        hooks.append(block.register_forward_hook(lambda _m, _a, out: block_out.append(out)))
    try:
        with torch.no_grad():
            down, mid = adapter(**inputs)
            w8, w16, w32, w64 = adapter.warped_features(inputs["reference"], inputs["flow"])
            l8, l16 = adapter.landmark_features(inputs["landmark_images"])
            cdb = adapter.controlnet_down_blocks
            want_in = [
                stem[0] + w8 + l8,
                block_out[0][0] + w16 + l16,
                block_out[1][0] + w32,
                block_out[2][0] + w64,
                block_out[3][0] + w64 + w64,  # after block 3, then again before the mid block
            ]
            skips = [block_in[0]] + [t for out in block_out[:4] for t in out[1]]
            want_down = [conv(s) for conv, s in zip(cdb, skips, strict=True)]
            want_mid = adapter.controlnet_mid_block(block_out[4])
            pre_injection = [cdb[i](block_out[k][0]) for i, k in ((3, 0), (6, 1), (9, 2), (11, 3))]
    finally:
        for hook in hooks:
            hook.remove()
    assert len(block_in) == len(blocks) == 5
    for got, want in zip(block_in, want_in, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    _assert_same((down, mid), (want_down, want_mid))
    _assert_same(outputs, (want_down, want_mid))
    for i, want in zip((3, 6, 9, 11), pre_injection, strict=True):
        assert torch.equal(down[i], want)


def test_flow_encoder_activates_and_hourglass_puts_skips_first(adapter: LandmarkAdapter) -> None:
    """Two upstream details the layout alone cannot show: every flow-encoder layer ends in
    SiLU, and each hourglass decoder block after the first sees [encoder skip, previous]."""
    base = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        feats = adapter.flow_encoder(base)
        for k, enc in enumerate(adapter.flow_encoder.encoders):
            assert torch.equal(feats[k + 1], nnf.silu(enc.conv_in(feats[k])))
        hourglass = adapter.occlusions["8"].hourglass
        seen: list[torch.Tensor] = []
        hooks = [
            b.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
            for b in hourglass.decoder.up_blocks
        ]
        try:
            x = torch.randn(1, 66, 4, 4)
            skips = hourglass.encoder(x)[1:]  # the configured widths, e.g. 128, 256, 512
            hourglass(x)
        finally:
            for hook in hooks:
                hook.remove()
    assert torch.equal(seen[0], skips[2])
    middle, first = skips[1].shape[1], skips[0].shape[1]
    assert torch.equal(seen[1][:, :middle], skips[1])  # the skip first, then what was just made
    assert torch.equal(seen[2][:, :first], skips[0])


def test_landmark_half_scale_is_upstreams_nearest_interpolation(
    adapter: LandmarkAdapter, inputs: dict[str, Any]
) -> None:
    with torch.no_grad():
        full, half = adapter.landmark_features(inputs["landmark_images"])
    assert tuple(full.shape) == (B * F, 32, H_LAT, W_LAT)
    assert torch.equal(half, nnf.interpolate(full, scale_factor=0.5))


def test_conditioning_scale_scales_every_residual_linearly(
    adapter: LandmarkAdapter,
    inputs: dict[str, Any],
    outputs: tuple[list[torch.Tensor], torch.Tensor],
) -> None:
    with torch.no_grad():
        for scale in (0.0, 0.5, 2.0):
            down, mid = adapter(**inputs, conditioning_scale=scale)
            for got, base in zip([*down, mid], [*outputs[0], outputs[1]], strict=True):
                torch.testing.assert_close(got, base * scale, rtol=0, atol=0)


def test_timestep_per_batch_item_equals_a_scalar(
    adapter: LandmarkAdapter,
    inputs: dict[str, Any],
    outputs: tuple[list[torch.Tensor], torch.Tensor],
) -> None:
    with torch.no_grad():
        got = adapter(**{**inputs, "timestep": torch.full((B,), 3.5)})
    _assert_same(got, outputs)


def test_one_frame_and_sizes_that_are_not_multiples_of_64(adapter: LandmarkAdapter) -> None:
    """No moving frame (F = 1) needs no flow; a 96 x 64 image (latent 12 x 8) gives ceil-sized
    maps on every path, so the flow still lines up with the features."""
    with torch.no_grad():
        down, mid = adapter(**_inputs(frames=1))
        assert tuple(mid.shape) == (B, 64, 2, 1)
        down, mid = adapter(**_inputs(h=12, w=8))
    assert tuple(down[3].shape[-2:]) == (6, 4) and tuple(mid.shape[-2:]) == (2, 1)


def test_bad_input_shapes_are_named(adapter: LandmarkAdapter, inputs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="reference"):
        adapter(**{**inputs, "reference": inputs["reference"][..., :-8]})
    with pytest.raises(ValueError, match="flow"):
        adapter(**{**inputs, "flow": inputs["flow"][:, :1]})


def test_bfloat16_weights_run_and_stay_close(
    adapter: LandmarkAdapter,
    inputs: dict[str, Any],
    outputs: tuple[list[torch.Tensor], torch.Tensor],
) -> None:
    """Half-precision weights take float32 inputs (cast on the way in) and give residuals in
    their own dtype, near the float32 ones."""
    low = copy.deepcopy(adapter).to(torch.bfloat16)
    with torch.no_grad():
        down, mid = low(**inputs)
    for got, want in zip([*down, mid], [*outputs[0], outputs[1]], strict=True):
        assert got.dtype == torch.bfloat16
        assert (got.float() - want).abs().max() <= 0.05 * want.abs().max()


def test_residuals_plug_into_a_tiny_svd_unet(
    outputs: tuple[list[torch.Tensor], torch.Tensor], inputs: dict[str, Any]
) -> None:
    from faceshot_mofa.testing import build_unet

    torch.manual_seed(3)
    unet: Any = build_unet(tiny_adapter_config(), tiny=True)
    unet.eval()
    args = {k: inputs[k] for k in ("sample", "timestep", "encoder_hidden_states", "added_time_ids")}
    down, mid = outputs
    with torch.no_grad():
        plain = unet_forward(unet, **args)
        steered = unet_forward(unet, **args, down_residuals=down, mid_residual=mid)
    assert tuple(steered.shape) == (B, F, 4, H_LAT, W_LAT)
    assert torch.isfinite(steered).all()
    assert not torch.allclose(steered, plain)


# --------------------------------------------------------------------------- weights


def test_released_config_reads_as_the_default_config() -> None:
    assert config_from_dict(RELEASED_CONFIG) == AdapterConfig()


def test_released_folder_builds_at_full_size_and_names_what_is_missing(tmp_path: Path) -> None:
    """The released config.json gives the full-size module (on the meta device, so this is
    cheap), and a file with a single right tensor is refused for the other 764."""
    (tmp_path / CONFIG_NAME).write_text(json.dumps(RELEASED_CONFIG))
    save_file({"conv_in.bias": torch.zeros(320)}, tmp_path / WEIGHTS_NAME)
    _one_line_error(tmp_path, AdapterWeightsError, "764 missing keys", "and 761 more")


def test_save_then_load_gives_identical_residuals(
    adapter: LandmarkAdapter,
    inputs: dict[str, Any],
    outputs: tuple[list[torch.Tensor], torch.Tensor],
    tmp_path: Path,
) -> None:
    save_adapter(adapter, tmp_path)
    written = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert written["_class_name"] == "FlowControlNet"
    assert written["conditioning_embedding_out_channels"] == [8, 8, 16, 16]
    assert set(RELEASED_CONFIG) - {"_diffusers_version"} <= set(written)
    loaded = load_adapter(tmp_path)
    assert loaded.config == adapter.config and not loaded.training
    assert not any(p.requires_grad or p.is_meta for p in loaded.parameters())
    with torch.no_grad():
        _assert_same(loaded(**inputs), outputs)


def test_fp16_file_loads_as_float32_and_bfloat16(adapter: LandmarkAdapter, tmp_path: Path) -> None:
    half = copy.deepcopy(adapter).half()
    save_adapter(half, tmp_path)
    assert {v.dtype for v in load_file(tmp_path / WEIGHTS_NAME).values()} == {torch.float16}
    loaded = load_adapter(tmp_path, dtype=torch.float32)
    want = half.state_dict()
    got = loaded.state_dict()
    assert got.keys() == want.keys()
    assert all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k].float()) for k in got)
    assert loaded.dtype == torch.float32
    assert load_adapter(tmp_path, dtype=torch.bfloat16).dtype == torch.bfloat16


@pytest.fixture
def saved(adapter: LandmarkAdapter, tmp_path: Path) -> Iterator[Path]:
    save_adapter(adapter, tmp_path)
    yield tmp_path


def _edit_weights(folder: Path, edit: Any) -> None:
    state = load_file(folder / WEIGHTS_NAME)
    edit(state)
    save_file(state, folder / WEIGHTS_NAME)


def _one_line_error(folder: Path, kind: type[Exception], *needles: str) -> None:
    with pytest.raises(kind) as info:
        load_adapter(folder)
    message = str(info.value)
    assert isinstance(info.value, FaceshotUserError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_missing_files_are_a_missing_dependency(saved: Path, tmp_path_factory: Any) -> None:
    _one_line_error(tmp_path_factory.mktemp("empty"), MissingDependencyError, CONFIG_NAME)
    (saved / WEIGHTS_NAME).unlink()
    _one_line_error(saved, MissingDependencyError, WEIGHTS_NAME)


def test_unreadable_files_are_named(saved: Path) -> None:
    (saved / WEIGHTS_NAME).write_bytes(b"not a safetensors file at all")
    _one_line_error(saved, AdapterWeightsError, "cannot read", WEIGHTS_NAME)
    (saved / CONFIG_NAME).write_text("{broken")
    _one_line_error(saved, AdapterWeightsError, "cannot read", CONFIG_NAME)


def test_unsupported_config_is_refused(saved: Path) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["down_block_types"] = ["DownBlockSpatioTemporal"] * 4
    (saved / CONFIG_NAME).write_text(json.dumps(config))
    _one_line_error(saved, AdapterWeightsError, "down_block_types")


def test_extra_key_is_refused(saved: Path) -> None:
    _edit_weights(saved, lambda s: s.__setitem__("extra.weight", torch.zeros(2)))
    _one_line_error(saved, AdapterWeightsError, "1 unexpected keys", "extra.weight")


def test_missing_key_is_refused(saved: Path) -> None:
    _edit_weights(saved, lambda s: s.pop("zero_outs.8.bias"))
    _one_line_error(saved, AdapterWeightsError, "1 missing keys", "zero_outs.8.bias")


def test_wrong_shape_is_refused(saved: Path) -> None:
    _edit_weights(saved, lambda s: s.__setitem__("controlnet_mid_block.bias", torch.zeros(3)))
    _one_line_error(
        saved, AdapterWeightsError, "shape mismatches", "controlnet_mid_block.bias [3]", "[64]"
    )
