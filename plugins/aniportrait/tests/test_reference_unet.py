"""The reference UNet: SD 1.5's UNet without its head, in the released layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from faceshot_aniportrait.reference_unet import (
    SD15_UNET_CONFIG,
    build_reference_unet,
    drop_head,
    has_head,
    run_reference,
    tiny_unet_config,
)

#: ``released_layout(name)`` (conftest's fixture): key -> shape of a released checkpoint.
Layout = Callable[[str], dict[str, list[int]]]


HEAD = {"conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias"}


def test_full_size_reference_unet_has_exactly_the_released_keys_and_shapes(
    released_layout: Layout,
) -> None:

    want = released_layout("aniportrait_reference_unet")
    with torch.device("meta"):
        unet: Any = build_reference_unet()
    got = {k: list(v.shape) for k, v in unet.state_dict().items()}
    assert sorted(set(want) - set(got)) == []  # nothing missing
    assert sorted(set(got) - set(want)) == []  # nothing unexpected
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert len(got) == 682
    assert sum(p.numel() for p in unet.parameters()) == 859_508_800
    assert not has_head(unet)


def test_the_released_layout_is_the_stock_sd15_unet_less_its_head(released_layout: Layout) -> None:
    want = released_layout("aniportrait_reference_unet")
    with torch.device("meta"):
        stock: Any = UNet2DConditionModel(**SD15_UNET_CONFIG)
    full = {k: list(v.shape) for k, v in stock.state_dict().items()}
    assert set(full) - set(want) == HEAD
    assert {k: v for k, v in full.items() if k not in HEAD} == want
    assert has_head(stock)


def test_tiny_config_keeps_the_structure_and_key_names() -> None:
    with torch.device("meta"):
        full: Any = build_reference_unet()
        tiny: Any = build_reference_unet(tiny_unet_config())
    assert list(tiny.state_dict()) == list(full.state_dict())
    blocks = [m for m in tiny.modules() if isinstance(m, BasicTransformerBlock)]
    assert len(blocks) == 16  # every one is hooked by reference attention


def test_run_reference_returns_the_last_up_blocks_output() -> None:
    torch.manual_seed(0)
    cfg = tiny_unet_config()
    stock: Any = UNet2DConditionModel(**cfg).eval()
    reference: Any = build_reference_unet(cfg).eval()
    reference.load_state_dict(
        {k: v for k, v in stock.state_dict().items() if k not in HEAD}, strict=True
    )
    latents = torch.randn(2, 4, 8, 8)
    context = torch.randn(2, 1, cfg["cross_attention_dim"])
    seen: list[torch.Tensor] = []
    stock.up_blocks[-1].register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        out = run_reference(reference, latents, context)
        stock(latents, torch.tensor(0), encoder_hidden_states=context)
    assert tuple(out.shape) == (2, 32, 8, 8)
    torch.testing.assert_close(out, seen[0], rtol=0, atol=0)


def test_run_reference_refuses_a_unet_with_its_head() -> None:
    with torch.device("meta"):
        stock: Any = UNet2DConditionModel(**tiny_unet_config())
    with pytest.raises(ValueError, match="head-less"):
        run_reference(stock, torch.zeros(1, 4, 8, 8), torch.zeros(1, 1, 16))
    assert not has_head(drop_head(stock))
    assert not HEAD & set(stock.state_dict())
