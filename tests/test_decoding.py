"""decode_in_chunks: every frame once, in order, chunk by chunk, as uint8 RGB."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceshot_backends.decoding import decode_in_chunks, to_uint8_frames
from faceshot_core.progress import ProgressEvent


def test_frames_come_out_in_order_chunk_by_chunk() -> None:
    latents = torch.linspace(-1, 1, 7).reshape(7, 1, 1, 1).expand(7, 1, 2, 3).contiguous()
    calls: list[int] = []

    def decode(part: torch.Tensor) -> torch.Tensor:
        calls.append(part.shape[0])
        assert part.dtype == torch.float64
        return part.expand(-1, 3, -1, -1) * 0.5  # the "VAE": pixels = half the scaled latents

    events: list[ProgressEvent] = []
    frames = list(decode_in_chunks(decode, latents, 3, scaling_factor=0.5, dtype=torch.float64,
                                   progress=events.append))  # fmt: skip
    assert calls == [3, 3, 1]
    assert len(frames) == 7 and all(f.shape == (2, 3, 3) and f.dtype == np.uint8 for f in frames)
    expected = (np.linspace(-1, 1, 7) / 2 + 0.5) * 255  # pixels = latents / 0.5 * 0.5
    assert np.abs(np.array([f[0, 0, 0] for f in frames], dtype=float) - expected).max() <= 0.501
    assert [e.done for e in events] == list(range(1, 8)) and events[-1].total == 7


def test_pixels_are_clamped_and_rounded() -> None:
    pixels = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 5).expand(1, 3, 1, 5)
    frame = to_uint8_frames(pixels)[0]
    assert frame[0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_a_chunk_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(decode_in_chunks(lambda p: p, torch.zeros(2, 1, 1, 1), 0, scaling_factor=1.0))
