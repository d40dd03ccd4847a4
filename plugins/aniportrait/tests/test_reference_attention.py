"""Reference attention between a 2D reference UNet and the 3D denoising UNet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from diffusers import UNet2DConditionModel
from faceshot_aniportrait.motion_module import TemporalTransformer
from faceshot_aniportrait.reference_attention import ReferenceAttention, transformer_blocks
from faceshot_aniportrait.unet3d import DenoisingUNet3D, DenoisingUNetConfig, tiny_denoising_config
from torch import nn


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """These models are tiny: each op is too small for threads to pay, and when another
    process busies a core, two-thread ops stall on each other (over 10x slower measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def twins() -> tuple[UNet2DConditionModel, DenoisingUNet3D]:
    """A tiny reference UNet and a denoising UNet with the same 2D weights, motion at identity
    (so that, frame by frame, the denoising UNet computes exactly what the reference UNet does).
    """
    torch.manual_seed(3)
    cfg = tiny_denoising_config()
    reference = UNet2DConditionModel(**cfg.spatial_unet_kwargs()).eval()
    denoising = DenoisingUNet3D(cfg).eval()
    denoising.load_state_dict(reference.state_dict(), strict=False)
    with torch.no_grad():
        for module in denoising.modules():
            if isinstance(module, TemporalTransformer):
                module.proj_out.weight.zero_()
                module.proj_out.bias.zero_()
    return reference, denoising


def test_full_size_pairs_the_16_blocks_upstream_pairs() -> None:
    """Upstream: blocks in module order (down, up, mid), stable-sorted by width, zipped."""
    with torch.device("meta"):
        reference = UNet2DConditionModel(**DenoisingUNetConfig().spatial_unet_kwargs())
        denoising = DenoisingUNet3D()
    attention = ReferenceAttention(reference, denoising)
    assert len(attention.paths) == 16

    def upstream_order(unet: nn.Module) -> list[str]:
        blocks = transformer_blocks(unet)  # module order
        return sorted(blocks, key=lambda p: -blocks[p].norm1.normalized_shape[0])

    ref_order, den_order = upstream_order(reference), upstream_order(denoising)
    assert ref_order == den_order  # zipping pairs each block with its namesake
    assert ref_order[:6] == [
        "down_blocks.2.attentions.0.transformer_blocks.0",
        "down_blocks.2.attentions.1.transformer_blocks.0",
        "up_blocks.1.attentions.0.transformer_blocks.0",
        "up_blocks.1.attentions.1.transformer_blocks.0",
        "up_blocks.1.attentions.2.transformer_blocks.0",
        "mid_block.attentions.0.transformer_blocks.0",
    ]
    assert set(attention.paths) == set(ref_order)


@torch.no_grad()
def test_reading_the_frames_own_tokens_changes_nothing(
    twins: tuple[UNet2DConditionModel, DenoisingUNet3D],
) -> None:
    """Keys/values ``[x, x]`` give the same softmax average as ``x``: when the stored tokens
    are each block's own (reference = every frame, same timestep and context, motion at
    identity), reading is exactly plain self-attention, block after block."""
    reference, denoising = twins
    attention = ReferenceAttention(reference, denoising, store_dtype=None)
    latents, context = torch.randn(1, 4, 16, 16), torch.randn(1, 1, 16)
    attention.write(latents, context, timestep=400)
    video = latents[:, :, None].expand(1, 4, 3, 16, 16)
    plain = denoising(video, 400, context)
    with attention.reading(cfg_halves=False):
        read = denoising(video, 400, context)
    torch.testing.assert_close(read, plain, atol=1e-5, rtol=1e-5)

    attention.write(torch.randn(1, 4, 16, 16), context, timestep=400)  # another reference
    with attention.reading(cfg_halves=False):
        assert (denoising(video, 400, context) - plain).abs().max() > 1e-3


@torch.no_grad()
def test_write_stores_the_norm1_outputs_rounded_to_float16_by_default(
    twins: tuple[UNet2DConditionModel, DenoisingUNet3D],
) -> None:
    reference, denoising = twins
    seen: dict[str, torch.Tensor] = {}
    blocks = transformer_blocks(reference)
    hooks = [
        block.norm1.register_forward_hook(lambda _m, _i, out, p=p: seen.__setitem__(p, out))
        for p, block in blocks.items()
    ]
    latents, context = torch.randn(2, 4, 8, 8), torch.randn(2, 1, 16)
    try:
        reference(latents, 0, encoder_hidden_states=context)
    finally:
        for hook in hooks:
            hook.remove()
    rounded = ReferenceAttention(reference, denoising)
    exact = ReferenceAttention(reference, denoising, store_dtype=None)
    rounded.write(latents, context)
    exact.write(latents, context)
    assert set(rounded.bank) == set(seen) and len(seen) == 16
    for path, tokens in seen.items():
        assert rounded.bank[path].dtype == torch.float16
        assert torch.equal(rounded.bank[path], tokens.half())
        assert torch.equal(exact.bank[path], tokens)
    assert all(not block.norm1._forward_hooks for block in blocks.values())  # hooks gone


@torch.no_grad()
def test_write_stops_before_the_output_head(
    twins: tuple[UNet2DConditionModel, DenoisingUNet3D],
) -> None:
    """AniPortrait's reference UNet has no ``conv_norm_out``/``conv_out``; write never gets
    there (a head that would fail proves it)."""
    reference, denoising = twins
    head = reference.conv_out
    reference.conv_out = None
    try:
        attention = ReferenceAttention(reference, denoising)
        attention.write(torch.randn(1, 4, 8, 8), torch.randn(1, 1, 16))
        assert len(attention.bank) == 16
    finally:
        reference.conv_out = head


@torch.no_grad()
def test_guidance_halves(twins: tuple[UNet2DConditionModel, DenoisingUNet3D]) -> None:
    """Batch ``[uncond, cond]``: the unconditional half is plain self-attention, the
    conditional half reads the conditional reference (as writing with that context alone)."""
    reference, denoising = twins
    attention = ReferenceAttention(reference, denoising, store_dtype=None)
    clip = torch.randn(1, 1, 16)
    contexts = torch.cat([torch.zeros_like(clip), clip])
    latents = torch.randn(1, 4, 8, 8)
    video = torch.randn(2, 4, 3, 8, 8)
    plain = denoising(video, 300, contexts)
    attention.write(latents, contexts)  # one latent for both contexts, as upstream repeats it
    processors = [b.attn1.processor for b in transformer_blocks(denoising).values()]
    with attention.reading(cfg_halves=True):
        guided = denoising(video, 300, contexts)
    # plain self-attention (computed on half the batch: equal up to summation order)
    torch.testing.assert_close(guided[0], plain[0], atol=1e-6, rtol=1e-6)
    assert (guided[1] - plain[1]).abs().max() > 1e-3
    attention.write(latents, clip)
    with attention.reading(cfg_halves=False):
        conditional = denoising(video[1:], 300, clip)
    torch.testing.assert_close(guided[1:], conditional, atol=1e-5, rtol=1e-5)
    # the denoising UNet's own processors are back
    assert [b.attn1.processor for b in transformer_blocks(denoising).values()] == processors


def test_misuse_is_refused(twins: tuple[UNet2DConditionModel, DenoisingUNet3D]) -> None:
    reference, denoising = twins
    attention = ReferenceAttention(reference, denoising)
    with pytest.raises(RuntimeError, match="write"), attention.reading():
        pass
    with torch.no_grad():
        attention.write(torch.randn(1, 4, 8, 8), torch.randn(1, 1, 16))
    with pytest.raises(ValueError, match="even"), attention.reading(cfg_halves=True):
        pass
    processors = [b.attn1.processor for b in transformer_blocks(denoising).values()]
    with pytest.raises(KeyError), attention.reading(cfg_halves=False):
        raise KeyError("inside")  # processors are restored on errors too
    assert [b.attn1.processor for b in transformer_blocks(denoising).values()] == processors
    attention.clear()
    assert attention.bank == {}
    cfg = tiny_denoising_config()
    smaller = UNet2DConditionModel(**{**cfg.spatial_unet_kwargs(), "layers_per_block": 1})
    with pytest.raises(ValueError, match="differ"):
        ReferenceAttention(smaller, denoising)
