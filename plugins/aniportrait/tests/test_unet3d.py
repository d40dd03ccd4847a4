"""The 3D denoising UNet: released layout, frames, motion modules, pose features."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from faceshot_aniportrait.motion_module import MotionModule, TemporalTransformer
from faceshot_aniportrait.unet3d import DenoisingUNet3D, DenoisingUNetConfig, tiny_denoising_config

Layout = Callable[[str], dict[str, list[int]]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """These models are tiny: each op is too small for threads to pay, and when another
    process busies a core, two-thread ops stall on each other (over 10x slower measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _zero_motion(unet: DenoisingUNet3D) -> None:
    """Zero every motion module's ``proj_out`` (upstream's initialisation): each is identity."""
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, TemporalTransformer):
                module.proj_out.weight.zero_()
                module.proj_out.bias.zero_()


@pytest.fixture(scope="module")
def tiny() -> DenoisingUNet3D:
    torch.manual_seed(0)
    return DenoisingUNet3D(tiny_denoising_config()).eval()


@pytest.fixture(scope="module")
def twins() -> tuple[UNet2DConditionModel, DenoisingUNet3D]:
    """A tiny SD-style 2D UNet and the 3D UNet holding the same 2D weights, motion zeroed."""
    torch.manual_seed(1)
    cfg = tiny_denoising_config()
    unet2d = UNet2DConditionModel(**cfg.spatial_unet_kwargs()).eval()
    unet3d = DenoisingUNet3D(cfg).eval()
    missing, unexpected = unet3d.load_state_dict(unet2d.state_dict(), strict=False)
    assert unexpected == [] and all("motion_modules" in k for k in missing)
    _zero_motion(unet3d)
    return unet2d, unet3d


def test_full_size_unet_has_exactly_the_released_keys_and_shapes(released_layout: Layout) -> None:
    want = released_layout("aniportrait_denoising_unet")
    spatial = released_layout("aniportrait_denoising_unet_no_motion_module")
    motion = released_layout("aniportrait_motion_module")
    # the full file is the two released files side by side, nothing shared
    assert set(spatial) & set(motion) == set()
    assert {**spatial, **motion} == want
    with torch.device("meta"):
        unet = DenoisingUNet3D()
    state = unet.state_dict()
    got = {k: list(v.shape) for k, v in state.items()}
    assert sorted(set(want) - set(got)) == []  # nothing missing
    assert sorted(set(got) - set(want)) == []  # nothing unexpected
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert sum(v.numel() for v in state.values()) == 1_313_938_564
    # the position codes are persistent buffers (42: two per motion module, 21 modules)
    buffers = {k for k, _ in unet.named_buffers()}
    assert buffers == {k for k in want if k.endswith("pos_encoder.pe")} and len(buffers) == 42
    assert sum(isinstance(m, MotionModule) for m in unet.modules()) == 21
    assert {k for k in got if "motion_module" in k} == set(motion)


def test_spatial_kwargs_build_the_released_non_motion_part(released_layout: Layout) -> None:
    """diffusers' 2D UNet from ``spatial_unet_kwargs`` is SD 1.5: the 686 non-motion tensors."""
    with torch.device("meta"):
        unet2d = UNet2DConditionModel(**DenoisingUNetConfig().spatial_unet_kwargs())
    got = {k: list(v.shape) for k, v in unet2d.state_dict().items()}
    assert got == released_layout("aniportrait_denoising_unet_no_motion_module")


def test_position_code_is_the_sine_cosine_table() -> None:
    pe = MotionModule(64, norm_groups=8).temporal_transformer.transformer_blocks[0]
    code = pe.attention_blocks[1].pos_encoder.pe.double()
    assert code.shape == (1, 32, 64)
    pos, i = 7, 5  # frame 7, frequency 5: channels 10 (sine) and 11 (cosine)
    angle = pos / 10000 ** (2 * i / 64)
    assert code[0, pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert code[0, pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@torch.no_grad()
def test_forward_shapes_for_1_to_16_frames_and_at_most_32(tiny: DenoisingUNet3D) -> None:
    context = torch.randn(1, 1, 16)
    for frames in range(1, 17):
        out = tiny(torch.randn(1, 4, frames, 8, 8), 999, context)
        assert out.shape == (1, 4, frames, 8, 8) and torch.isfinite(out).all()
    assert tiny(torch.randn(1, 4, 32, 8, 8), 0, context).shape == (1, 4, 32, 8, 8)
    with pytest.raises(ValueError, match="at most 32"):
        tiny(torch.randn(1, 4, 33, 8, 8), 0, context)


@torch.no_grad()
def test_without_motion_it_is_the_2d_unet_on_every_frame(
    twins: tuple[UNet2DConditionModel, DenoisingUNet3D],
) -> None:
    """Inflation check: motion modules at identity -> diffusers' UNet2DConditionModel per frame
    (also at a latent size that is no multiple of 8, where upsampling follows the skips)."""
    unet2d, unet3d = twins
    for batch, frames, h, w in [(2, 3, 16, 16), (1, 2, 12, 20)]:
        sample, context = torch.randn(batch, 4, frames, h, w), torch.randn(batch, 1, 16)
        t = torch.tensor([500, 20][:batch])
        out = unet3d(sample, t, context)
        per_frame = [unet2d(sample[:, :, f], t, context).sample for f in range(frames)]
        torch.testing.assert_close(out, torch.stack(per_frame, dim=2), atol=2e-5, rtol=1e-4)


@torch.no_grad()
def test_motion_modules_mix_frames(
    tiny: DenoisingUNet3D, twins: tuple[UNet2DConditionModel, DenoisingUNet3D]
) -> None:
    context = torch.randn(1, 1, 16)
    sample = torch.randn(1, 4, 4, 8, 8)
    changed = sample.clone()
    changed[:, :, 0] += 1.0  # only frame 0 changes
    for unet, mixes in [(tiny, True), (twins[1], False)]:
        diff = (unet(sample, 10, context) - unet(changed, 10, context))[:, :, 1:].abs().max()
        assert (diff > 1e-3) if mixes else (diff == 0), diff


@torch.no_grad()
def test_motion_module_equals_diffusers_animatediff_when_frames_share_statistics() -> None:
    """An independent check of the temporal transformer against diffusers' AnimateDiff block.

    diffusers normalises over all frames at once, AniPortrait per frame; the two agree when
    every frame has the same statistics: here, frames are circular shifts of one image.
    """
    torch.manual_seed(2)
    channels, frames = 64, 6
    ours = MotionModule(channels, heads=8, norm_groups=8)
    theirs = AnimateDiffTransformer3D(
        num_attention_heads=8, attention_head_dim=channels // 8, in_channels=channels,
        norm_num_groups=8, double_self_attention=True, positional_embeddings="sinusoidal",
        num_positional_embeddings=32,
    )  # fmt: skip
    renames = {"attention_blocks.0.": "attn1.", "attention_blocks.1.": "attn2.",
               "norms.0.": "norm1.", "norms.1.": "norm2.", "ff_norm.": "norm3."}  # fmt: skip
    state = {}
    for key, value in ours.temporal_transformer.state_dict().items():
        for old, new in renames.items():
            key = key.replace(old, new)
        # diffusers keeps one position code per block (it is the same table for both)
        state[key.replace("attn1.pos_encoder.", "pos_embed.")] = value
    state = {k: v for k, v in state.items() if "attn2.pos_encoder" not in k}
    theirs.load_state_dict(state)
    base = torch.randn(2, channels, 5, 7)
    x = torch.stack([base.roll(f, dims=-1) for f in range(frames)], dim=1).flatten(0, 1)
    torch.testing.assert_close(ours(x, frames), theirs(x, num_frames=frames), atol=1e-4, rtol=1e-4)


def _pose_features(cfg: DenoisingUNetConfig, batch: int, frames: int) -> list[torch.Tensor]:
    c = cfg.block_out_channels
    widths, sizes = (c[0], c[0], c[1], c[2], c[3]), (16, 8, 4, 2, 2)
    return [torch.randn(batch, w, frames, s, s) for w, s in zip(widths, sizes, strict=True)]


@torch.no_grad()
def test_pose_features_enter_the_main_stream_as_upstream(tiny: DenoisingUNet3D) -> None:
    cfg = tiny.config
    sample, context = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 1, 16)
    poses = _pose_features(cfg, 1, 3)
    plain = tiny(sample, 50, context)
    assert (tiny(sample, 50, context, poses) - plain).abs().max() > 1e-3

    # feature 0 is added before the first skip: a constant one is a shift of conv_in's bias
    shift = torch.randn(cfg.block_out_channels[0])
    zeros = [torch.zeros_like(p) for p in poses]
    const0 = [shift[None, :, None, None, None].expand_as(poses[0]), *zeros[1:]]
    with_feature = tiny(sample, 50, context, const0)
    tiny.conv_in.bias += shift
    try:
        torch.testing.assert_close(tiny(sample, 50, context), with_feature)
    finally:
        tiny.conv_in.bias -= shift

    # feature k + 1 comes after down block k's skips were taken: they do not see it
    skips: dict[int, list[torch.Tensor]] = {}
    hooks = [
        block.register_forward_hook(lambda _m, _i, out, k=k: skips.__setitem__(k, out[1]))
        for k, block in enumerate(tiny.down_blocks)
    ]
    try:
        tiny(sample, 50, context)
        before = dict(skips)
        for k in range(4):
            only = [
                p if j == k + 1 else z for j, (p, z) in enumerate(zip(poses, zeros, strict=True))
            ]
            tiny(sample, 50, context, only)
            for block in range(4):
                same = all(
                    torch.equal(a, b) for a, b in zip(skips[block], before[block], strict=True)
                )
                assert same == (block <= k), (k, block)
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def test_pose_feature_layouts_and_batch_sharing_agree(tiny: DenoisingUNet3D) -> None:
    """``[B, C, F, h, w]``, stacked ``[B * F, C, h, w]`` and a shared batch of 1 are the same."""
    frames = 2
    sample, context = torch.randn(2, 4, frames, 16, 16), torch.randn(1, 1, 16)
    shared = _pose_features(tiny.config, 1, frames)
    both = [p.expand(2, -1, -1, -1, -1) for p in shared]
    stacked = [p.transpose(1, 2).flatten(0, 1) for p in both]
    per_frame = [p[0].transpose(0, 1) for p in shared]  # [F, C, h, w]
    want = tiny(sample, torch.tensor(7), context, both)
    for form in (shared, stacked, per_frame):
        torch.testing.assert_close(tiny(sample, 7, context, form), want)
    torch.testing.assert_close(tiny(sample, torch.tensor([7, 7]), context, both), want)
