"""Forward splatting against a per-pixel Python loop that states the rules directly."""

from __future__ import annotations

import math

import pytest
import torch
from faceshot_mofa.splatting import EPSILON, splat_average, splat_sum


def _naive_average(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The splatting rules spelled out pixel by pixel, in float64."""
    b, c, h, w = features.shape
    acc = torch.zeros(b, c + 1, h, w, dtype=torch.float64)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                tx = x + float(flow[n, 0, y, x])
                ty = y + float(flow[n, 1, y, x])
                if not (math.isfinite(tx) and math.isfinite(ty)):
                    continue
                x0, y0 = math.floor(tx), math.floor(ty)
                fx, fy = tx - x0, ty - y0
                value = torch.cat(
                    [features[n, :, y, x].double(), torch.ones(1, dtype=torch.float64)]
                )
                for cx, cy, wt in (
                    (x0, y0, (1 - fx) * (1 - fy)),
                    (x0 + 1, y0, fx * (1 - fy)),
                    (x0, y0 + 1, (1 - fx) * fy),
                    (x0 + 1, y0 + 1, fx * fy),
                ):
                    if 0 <= cx < w and 0 <= cy < h:
                        acc[n, :, cy, cx] += wt * value
    return acc[:, :c] / (acc[:, c:] + EPSILON)


def test_matches_naive_loop_on_random_input() -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 7, 9, generator=gen)
    flow = torch.randn(2, 2, 7, 9, generator=gen) * 3.0
    got = splat_average(features, flow)
    want = _naive_average(features, flow)
    assert got.shape == features.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_integer_shift_moves_features_exactly() -> None:
    features = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(1, 2, 4, 5) + 1.0
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 2.0  # two columns right
    flow[:, 1] = 1.0  # one row down
    got = splat_average(features, flow)
    expected = torch.zeros_like(features)
    expected[:, :, 1:, 2:] = features[:, :, :-1, :-2]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-6)


def test_targets_off_the_image_are_dropped() -> None:
    features = torch.ones(1, 1, 3, 3)
    flow = torch.full((1, 2, 3, 3), 10.0)
    assert splat_sum(features, flow).abs().max() == 0.0
    assert splat_average(features, flow).abs().max() == 0.0
    # Half-way past the right edge: only the in-image half of the weight arrives.
    flow = torch.zeros(1, 2, 3, 3)
    flow[0, 0, 1, 2] = 0.5
    summed = splat_sum(features, flow)
    assert float(summed[0, 0, 1, 2]) == pytest.approx(0.5)
    assert float(summed.sum()) == pytest.approx(8.5)


def test_non_finite_flow_is_skipped() -> None:
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(1, 2, 5, 6, generator=gen)
    flow = torch.randn(1, 2, 5, 6, generator=gen)
    flow[0, 0, 1, 1] = float("nan")
    flow[0, 1, 2, 3] = float("inf")
    flow[0, 0, 4, 0] = float("-inf")
    flow[0, 1, 0, 5] = 1e30  # finite but far off the image
    got = splat_average(features, flow)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), _naive_average(features, flow), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(1, 4, 6, 6, generator=gen).to(dtype)
    flow = (torch.randn(1, 2, 6, 6, generator=gen) * 2.0).to(dtype)
    got = splat_average(features, flow)
    assert got.dtype == dtype
    want = _naive_average(features.float(), flow.float())
    torch.testing.assert_close(got.double(), want, atol=3e-2, rtol=3e-2)


def test_zero_flow_is_identity_and_shapes_are_checked() -> None:
    features = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(splat_average(features, torch.zeros(1, 2, 4, 4)), features)
    with pytest.raises(ValueError):
        splat_average(features, torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError):
        splat_average(features, torch.zeros(1, 2, 4, 5))
