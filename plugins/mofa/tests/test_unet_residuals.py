"""The UNet forward with adapter residuals, on a tiny SVD UNet built in code."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from faceshot_mofa.unet import RESIDUAL_REPEATS, unet_forward


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, dict[str, torch.Tensor]]:
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 32, 32, 32),
        num_attention_heads=(2, 2, 2, 2), cross_attention_dim=16, addition_time_embed_dim=4,
        projection_class_embeddings_input_dim=12, layers_per_block=2, num_frames=3,
    ).eval()  # fmt: skip
    inputs = {
        "sample": torch.randn(1, 3, 8, 16, 16),
        "timestep": torch.tensor(10.0),
        "encoder_hidden_states": torch.randn(1, 1, 16),
        "added_time_ids": torch.tensor([[6.0, 127.0, 0.02]]),
    }
    return unet, inputs


def test_without_residuals_it_is_the_stock_forward(tiny: tuple[Any, dict]) -> None:
    unet, inputs = tiny
    with torch.no_grad():
        want = unet(**inputs).sample
        got = unet_forward(unet, **inputs)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_each_residual_reaches_its_skip_the_documented_number_of_times(
    tiny: tuple[Any, dict],
) -> None:
    """Hooks on the up blocks read the skip tensors: with one residual set, exactly that skip
    changes, by the residual times its repeat count."""
    unet, inputs = tiny
    seen: list[tuple[torch.Tensor, ...]] = []

    def grab(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        seen.append(kwargs["res_hidden_states_tuple"])

    hooks = [b.register_forward_pre_hook(grab, with_kwargs=True) for b in unet.up_blocks]
    try:
        with torch.no_grad():
            unet_forward(unet, **inputs)
            base = _in_down_order(seen)
            for i, repeats in enumerate(RESIDUAL_REPEATS):
                seen.clear()
                residuals = [torch.zeros_like(t) for t in base]
                residuals[i] = torch.full_like(base[i], 0.5)
                unet_forward(unet, **inputs, down_residuals=residuals)
                moved = _in_down_order(seen)
                for j, (a, b) in enumerate(zip(moved, base, strict=True)):
                    want = 0.5 * repeats if j == i else 0.0
                    torch.testing.assert_close(a - b, torch.full_like(b, want), atol=1e-5, rtol=0)
                seen.clear()
    finally:
        for h in hooks:
            h.remove()
    assert len(RESIDUAL_REPEATS) == len(base) == 12


def _in_down_order(seen: list[tuple[torch.Tensor, ...]]) -> list[torch.Tensor]:
    """The skips as the down path produced them (the up path consumes them last first)."""
    return [t for group in reversed(seen) for t in group]
