"""Forward "average" splatting in plain torch, in place of MOFA-Video's CuPy kernel.

MOFA-Video's adapter moves the reference image's features along each frame's dense flow by
*forward* warping: every source pixel pushes its feature to where the flow says it goes, and each
target pixel ends up with the weighted average of whatever landed on it.  Upstream does this with
a CuPy CUDA kernel (atomic adds), which is why users hit CuPy install failures.  The same sums are
an index scatter-add on flattened tensors, which torch provides on every device, so no compiled
extension is needed.

The rules reproduced (the released adapter was trained with them):

* source pixel ``(x, y)`` goes to ``(x + u, y + v)``; ``x0 = floor(x + u)``, ``y0 = floor(y + v)``;
* its feature is shared between the four neighbours ``(x0, y0) .. (x0 + 1, y0 + 1)`` with
  bilinear weights; neighbours outside the image are dropped (their share is lost, not moved);
* a source whose target is not finite (NaN or infinite flow) contributes nothing;
* "average": a ones channel is splatted alongside the features and the features are divided by
  (that channel + 1e-7), so pixels nothing reached stay zero instead of dividing by zero.
"""

from __future__ import annotations

import torch

#: Added to the splatted weight before dividing, as upstream does.
EPSILON = 1e-7


def splat_sum(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward-splat ``features`` [B, C, H, W] along ``flow`` [B, 2, H, W], summing (no average).

    ``flow`` channel 0 is the x (column) displacement, channel 1 the y (row) displacement, in
    pixels.  Accumulation is in float32 whatever the input dtype (half-precision atomic sums lose
    small contributions next to large ones); the result is float32, on the input's device.
    """
    if features.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"expected features [B, C, H, W] and flow [B, 2, H, W], got "
            f"{tuple(features.shape)} and {tuple(flow.shape)}"
        )
    b, c, h, w = features.shape
    if flow.shape[0] != b or flow.shape[2:] != features.shape[2:]:
        raise ValueError(
            f"flow {tuple(flow.shape)} does not match features {tuple(features.shape)}"
        )
    device = features.device
    feats = features.to(torch.float32).permute(0, 2, 3, 1).reshape(b * h * w, c)
    flow32 = flow.to(device=device, dtype=torch.float32)

    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    tx = (xs + flow32[:, 0]).reshape(-1)
    ty = (ys + flow32[:, 1]).reshape(-1)
    finite = torch.isfinite(tx) & torch.isfinite(ty)
    # Clamping keeps huge or non-finite targets representable as integers; anything clamped
    # lies at least one pixel off the image, so all four of its neighbours are dropped anyway.
    tx = torch.where(finite, tx, torch.full_like(tx, -2.0)).clamp(-2.0, w + 1.0)
    ty = torch.where(finite, ty, torch.full_like(ty, -2.0)).clamp(-2.0, h + 1.0)
    x0f = torch.floor(tx)
    y0f = torch.floor(ty)
    fx = tx - x0f
    fy = ty - y0f
    x0 = x0f.to(torch.int64)
    y0 = y0f.to(torch.int64)
    batch = torch.arange(b, device=device).repeat_interleave(h * w)

    out = torch.zeros(b * h * w, c, device=device, dtype=torch.float32)
    corners = (
        (x0, y0, (1.0 - fx) * (1.0 - fy)),
        (x0 + 1, y0, fx * (1.0 - fy)),
        (x0, y0 + 1, (1.0 - fx) * fy),
        (x0 + 1, y0 + 1, fx * fy),
    )
    for cx, cy, weight in corners:
        keep = finite & (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        index = (batch[keep] * h + cy[keep]) * w + cx[keep]
        out.index_add_(0, index, feats[keep] * weight[keep, None])
    return out.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()


def splat_average(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward-splat ``features`` [B, C, H, W] along ``flow`` [B, 2, H, W] and average.

    Where several sources land on one pixel their features are averaged by bilinear weight;
    pixels nothing reaches come out zero.  Returns [B, C, H, W] in the input's dtype and device.
    """
    ones = torch.ones_like(features[:, :1])
    summed = splat_sum(torch.cat([features, ones], dim=1), flow)
    averaged = summed[:, :-1] / (summed[:, -1:] + EPSILON)
    return averaged.to(features.dtype)
