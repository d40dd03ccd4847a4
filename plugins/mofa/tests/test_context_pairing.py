"""The temporal-context pairing of MOFA's release (diffusers 0.24) against diffusers' own."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention import TemporalBasicTransformerBlock
from faceshot_mofa.context_pairing import pair_contexts


def _block() -> TemporalBasicTransformerBlock:
    torch.manual_seed(0)
    return TemporalBasicTransformerBlock(16, 16, 2, 8, cross_attention_dim=12).eval()


def _inputs(batch: int, positions: int = 6, frames: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = torch.randn(batch * frames, positions, 16)
    per_video = torch.randn(batch, 1, 12)  # each video's context, laid out batch-major
    context = per_video.repeat_interleave(positions, dim=0)
    return hidden, context


def test_upstream_pairing_gives_row_r_the_context_of_video_r_mod_batch() -> None:
    block = _block()
    hidden, context = _inputs(2)
    with torch.no_grad():
        plain = block(hidden, num_frames=3, encoder_hidden_states=context)
        handles = pair_contexts([block], "upstream")
        paired = block(hidden, num_frames=3, encoder_hidden_states=context)
        for handle in handles:
            handle.remove()
        per_video = context.reshape(2, 6, 1, 12)[:, 0]
        by_hand = block(hidden, num_frames=3, encoder_hidden_states=per_video.repeat(6, 1, 1))
        after = block(hidden, num_frames=3, encoder_hidden_states=context)
    assert len(handles) == 1
    torch.testing.assert_close(paired, by_hand)
    assert not torch.allclose(paired, plain)  # two videos: the pairing matters
    torch.testing.assert_close(after, plain)  # the hooks are gone


def test_arguments_by_position_are_paired_too() -> None:
    block = _block()
    hidden, context = _inputs(2)
    with torch.no_grad():
        by_keyword = block(hidden, num_frames=3, encoder_hidden_states=context)
        pair_contexts([block], "upstream")
        paired_keyword = block(hidden, num_frames=3, encoder_hidden_states=context)
        paired_position = block(hidden, 3, context)
    torch.testing.assert_close(paired_position, paired_keyword)
    assert not torch.allclose(paired_position, by_keyword)


def test_one_video_is_the_same_either_way() -> None:
    block = _block()
    hidden, context = _inputs(1)
    with torch.no_grad():
        plain = block(hidden, num_frames=3, encoder_hidden_states=context)
        pair_contexts([block], "upstream")
        paired = block(hidden, num_frames=3, encoder_hidden_states=context)
    torch.testing.assert_close(paired, plain)


def test_per_video_installs_nothing_and_unknown_is_refused() -> None:
    assert pair_contexts([_block()], "per_video") == []
    with pytest.raises(ValueError, match="unknown context pairing"):
        pair_contexts([_block()], "sideways")  # type: ignore[arg-type]
