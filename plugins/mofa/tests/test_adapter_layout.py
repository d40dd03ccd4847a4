"""The adapter's modules against the released ``ldmk_controlnet`` layout, and their shapes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from faceshot_mofa.adapter import AdapterConfig, LandmarkAdapterModules, Occlusion


def test_full_size_adapter_has_exactly_the_released_keys_and_shapes(
    released_layout: Callable[[str], dict[str, list[int]]],
) -> None:
    want = released_layout("mofa_ldmk_controlnet")
    with torch.device("meta"):
        adapter = LandmarkAdapterModules()
    got = {k: list(v.shape) for k, v in adapter.state_dict().items()}
    assert sorted(set(want) - set(got)) == []  # nothing missing
    assert sorted(set(got) - set(want)) == []  # nothing unexpected
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert sum(v.numel() for v in adapter.state_dict().values()) == 722_453_685


def test_occlusion_module_mends_a_warped_feature() -> None:
    torch.manual_seed(0)
    occ = Occlusion(8)
    ref, warped = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    flow = torch.randn(2, 2, 6, 5)
    out = occ(ref, flow, warped)
    assert out.shape == warped.shape and torch.isfinite(out).all()
    with torch.no_grad():  # a mask of 1 everywhere keeps the warped feature
        occ.matting_mask.weight.zero_()
        occ.matting_mask.bias.fill_(50.0)
    torch.testing.assert_close(occ(ref, flow, warped), warped)


def test_tiny_config_builds_and_encodes_flow_features() -> None:
    cfg = AdapterConfig(
        block_out_channels=(32, 64, 64, 64), num_attention_heads=(2, 2, 2, 2), layers_per_block=1,
        cross_attention_dim=16, addition_time_embed_dim=4, projection_class_embeddings_input_dim=12,
        num_frames=3, cond_embedding_channels=(4, 4, 4, 4), ldmk_embedding_channels=(4, 4, 4, 4),
    )  # fmt: skip
    adapter = LandmarkAdapterModules(cfg)
    assert len(adapter.controlnet_down_blocks) == 1 + 2 + 2 + 2 + 1
    feats = adapter.flow_encoder(torch.randn(1, 32, 16, 16))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 16, 16), (32, 8, 8), (64, 4, 4), (64, 2, 2)]
    emb = adapter.controlnet_cond_embedding(torch.randn(1, 3, 64, 64))
    assert tuple(emb.shape) == (1, 32, 8, 8)  # 1/8 of the image, first block's width


def test_stock_svd_unet_matches_the_released_unet_layout(
    released_layout: Callable[[str], dict[str, list[int]]],
) -> None:
    """The base model is diffusers' own SVD UNet: the released ``unet/`` loads into it as is."""
    from diffusers import UNetSpatioTemporalConditionModel

    want = released_layout("svd_unet_spatiotemporal")
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()
    assert {k: list(v.shape) for k, v in unet.state_dict().items()} == want
