"""CMP, MOFA-Video's sparse-to-dense flow network, and the dense flow of a landmark run.

MOFA's landmark adapter warps the reference image's features by a *dense* flow.  Landmarks only
give a sparse one (68 displacements), so MOFA densifies it with CMP ("conditional motion
propagation", the released ``resnet50_vip+mpii_liteflow`` model, ``ckpt_iter_42000.pth.tar``).
CMP classifies each pixel's x and y displacement into 99 bins; :func:`dense_flow` turns that into
pixels exactly as MOFA did at inference, since the adapter was trained on those flows.

The network, as the released weights need it (module names are the checkpoint's keys minus
``module.``; :mod:`faceshot_mofa.cmp_loading` reads the file):

* ``image_encoder``: a ResNet-50 whose stages 3 and 4 trade their stride for dilation (2 and 4),
  so it stays at 1/8 of the input; a 1x1 ``conv5`` (with bias) reduces 2048 channels to 256.
  Besides that 1/8 feature it hands the decoder two skips: the stem's 1/2 output (64 channels,
  before the max pool) and stage 1's 1/4 output (256).
* ``flow_encoder``: the 4-channel sparse input (flow x, flow y, mask, mask) to 16 channels at 1/8
  (5x5 stride-2 conv, BN, ReLU, 2x2 max pool, 3x3 conv, BN, ReLU, 2x2 average pool).
* ``flow_decoder``: image and flow features concatenated (272 channels) go through four branches
  at 1/1, 1/2, 1/4 and 1/8 of that grid (max pool, then three 3x3 conv-BN-ReLU), brought back
  by bilinear interpolation (corners aligned) and fused; then two skip stages climb to 1/2 of
  the input, where a 1x1 ``head`` gives 198 logits.  The released config lists the branches as
  ``decoder_combo: [1, 2, 4]``, but this decoder type ignores that and always builds all four
  (the checkpoint has ``decoder8``).

Loading the checkpoint lives in :mod:`faceshot_mofa.cmp_loading`; :func:`load_cmp` is
re-exported here.  Inference only: :class:`SparseToDenseFlow` lets all frames share one
encoding of the image, which is exact with batch norm in eval mode and wrong in training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.functional import interpolate

from faceshot_mofa.cmp_loading import CMPCheckpointError, load_cmp, read_cmp_state_dict
from faceshot_mofa.conditioning import ArrayLike, expected_flow, sparse_flow

__all__ = [
    "CMP_SIZE",
    "CMPCheckpointError",
    "CMPConfig",
    "SparseToDenseFlow",
    "dense_flow",
    "load_cmp",
    "read_cmp_state_dict",
]

#: CMP works on square 384x384 inputs (its training crop); its logits come out at 192x192.
CMP_SIZE = 384

#: Channel growth of a ResNet bottleneck block (its last 1x1 conv widens by this factor).
EXPANSION = 4


@dataclass(frozen=True)
class CMPConfig:
    """Widths and depths of CMP; the defaults are the released model's.

    Smaller values build the same module tree (same key names, smaller shapes), which is how
    tests exercise loading and forward passes quickly; see :meth:`tiny`.
    """

    stem_channels: int = 64
    stage_widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck widths; outputs are x4
    stage_blocks: tuple[int, ...] = (3, 4, 6, 3)
    image_channels: int = 256  # conv5 output, ``img_enc_dim``
    sparse_hidden: int = 16
    sparse_channels: int = 16  # ``sparse_enc_dim``
    branch_channels: int = 128
    fusion8_channels: int = 256
    skip4_channels: int = 128
    fusion4_channels: int = 128
    skip2_channels: int = 32
    fusion2_channels: int = 64
    nbins: int = 99
    fmax: float = 50.0

    def __post_init__(self) -> None:
        if len(self.stage_widths) != 4 or len(self.stage_blocks) != 4:
            raise ValueError("CMP's ResNet has exactly four stages")
        if min(self.stage_blocks) < 1:
            raise ValueError("every ResNet stage needs at least one block")

    @property
    def output_channels(self) -> int:
        """Logits per pixel: ``nbins`` for x, then ``nbins`` for y."""
        return 2 * self.nbins

    @classmethod
    def tiny(cls) -> CMPConfig:
        """A CMP of about 22 thousand parameters with the released key names, for fast tests."""
        return cls(
            stem_channels=8, stage_widths=(4, 4, 8, 8), stage_blocks=(1, 2, 1, 1),
            image_channels=8, sparse_hidden=4, sparse_channels=4, branch_channels=8,
            fusion8_channels=8, skip4_channels=4, fusion4_channels=8, skip2_channels=4,
            fusion2_channels=8,
        )  # fmt: skip


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """A 3x3 convolution (bias, padding 1), batch norm and ReLU: the decoder's unit."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Bottleneck(nn.Module):
    """A ResNet bottleneck: 1x1 reduce, 3x3 (strided or dilated), 1x1 expand, plus a shortcut.

    The stride sits on the 3x3 convolution; ``downsample`` (1x1 conv + BN) reshapes the
    shortcut when the block changes resolution or width.
    """

    def __init__(
        self, cin: int, width: int, *, stride: int, dilation: int, downsample: bool
    ) -> None:
        super().__init__()
        cout = width * EXPANSION
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(
            width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if downsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + shortcut)


class ImageEncoder(nn.Module):
    """Dilated ResNet-50: ``(feature at 1/8, stem skip at 1/2, stage-1 skip at 1/4)``.

    Stages 3 and 4 were built with stride 2 and then switched to stride 1 with dilation 2 and 4
    (every 3x3 of the stage, and the shortcut's stride); they keep their ``downsample`` shortcut,
    so its keys exist in the checkpoint.  Stage 1 has one only if the stem width differs from
    its output width (it does at the released sizes: 64 vs 256).
    """

    def __init__(self, config: CMPConfig) -> None:
        super().__init__()
        stem = config.stem_channels
        self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        # (stride, dilation, built strided) per stage: a stage built strided has a shortcut
        # projection in its first block even where the stride became a dilation.
        plan = ((1, 1, False), (2, 1, True), (1, 2, True), (1, 4, True))
        cin = stem
        stages = []
        for width, blocks, (stride, dilation, strided) in zip(
            config.stage_widths, config.stage_blocks, plan, strict=True
        ):
            first = Bottleneck(
                cin, width, stride=stride, dilation=dilation,
                downsample=strided or cin != width * EXPANSION,
            )  # fmt: skip
            cin = width * EXPANSION
            rest = [
                Bottleneck(cin, width, stride=1, dilation=dilation, downsample=False)
                for _ in range(blocks - 1)
            ]
            stages.append(nn.Sequential(first, *rest))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.conv5 = nn.Conv2d(cin, config.image_channels, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = torch.relu(self.bn1(self.conv1(image)))
        quarter = self.layer1(self.maxpool(half))
        deep = self.layer4(self.layer3(self.layer2(quarter)))
        return self.conv5(deep), half, quarter


class SparseEncoder(nn.Module):
    """The sparse flow + mask (4 channels) to ``sparse_channels`` features at 1/8."""

    def __init__(self, config: CMPConfig) -> None:
        super().__init__()
        hidden, out = config.sparse_hidden, config.sparse_channels
        # Indices matter: the checkpoint names features.{0,1,4,5}.
        self.features = nn.Sequential(
            nn.Conv2d(4, hidden, 5, stride=2, padding=2),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(hidden, out, 3, padding=1),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2, stride=2),
        )

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        return self.features(sparse)


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to ``like``'s grid, corners aligned, as CMP was trained."""
    return interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class FlowDecoder(nn.Module):
    """Multi-scale context at 1/8, then two skip stages up to 1/2 and a 1x1 head."""

    def __init__(self, config: CMPConfig) -> None:
        super().__init__()
        cin = config.image_channels + config.sparse_channels
        b = config.branch_channels

        def branch(pool: int) -> nn.Sequential:
            layers: list[nn.Module] = [] if pool == 1 else [nn.MaxPool2d(pool, stride=pool)]
            for width_in in (cin, b, b):
                layers += _conv_bn_relu(width_in, b)
            return nn.Sequential(*layers)

        self.decoder1 = branch(1)
        self.decoder2 = branch(2)
        self.decoder4 = branch(4)
        self.decoder8 = branch(8)
        self.fusion8 = nn.Sequential(*_conv_bn_relu(4 * b, config.fusion8_channels))
        quarter_channels = config.stage_widths[0] * EXPANSION
        self.skipconv4 = nn.Sequential(*_conv_bn_relu(quarter_channels, config.skip4_channels))
        self.fusion4 = nn.Sequential(
            *_conv_bn_relu(config.fusion8_channels + config.skip4_channels, config.fusion4_channels)
        )
        self.skipconv2 = nn.Sequential(*_conv_bn_relu(config.stem_channels, config.skip2_channels))
        self.fusion2 = nn.Sequential(
            *_conv_bn_relu(config.fusion4_channels + config.skip2_channels, config.fusion2_channels)
        )
        self.head = nn.Conv2d(config.fusion2_channels, config.output_channels, 1)

    def forward(
        self, fused: torch.Tensor, half: torch.Tensor, quarter: torch.Tensor
    ) -> torch.Tensor:
        """``fused`` [N, C, h/8, w/8]; the skips may have batch 1 (shared by all N)."""
        n = fused.shape[0]
        x1 = self.decoder1(fused)
        context = [x1] + [_resize(d(fused), x1) for d in (self.decoder2, self.decoder4)]
        context.append(_resize(self.decoder8(fused), x1))
        f8 = self.fusion8(torch.cat(context, dim=1))
        skip4 = self.skipconv4(quarter).expand(n, -1, -1, -1)
        f4 = self.fusion4(torch.cat([_resize(f8, skip4), skip4], dim=1))
        skip2 = self.skipconv2(half).expand(n, -1, -1, -1)
        f2 = self.fusion2(torch.cat([_resize(f4, skip2), skip2], dim=1))
        return self.head(f2)


class SparseToDenseFlow(nn.Module):
    """CMP: an image and a sparse flow to per-pixel flow logits at half resolution.

    ``forward(image, sparse)``: ``image`` [N or 1, 3, H, W] in [-1, 1] (``x * 2 - 1`` of a
    [0, 1] image; CMP never saw ImageNet normalisation at MOFA's inference), ``sparse``
    [N, 4, H, W] = flow x, flow y (pixels) and the mask twice.  Returns [N, 2 * nbins, H/2, W/2]
    logits (x bins first); :func:`faceshot_mofa.conditioning.expected_flow` reads them.  An
    image of batch 1 is encoded once and shared by all N sparse inputs.  H and W should be
    multiples of 64 (the decoder's coarsest branch pools the 1/8 grid by 8).
    """

    def __init__(self, config: CMPConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else CMPConfig()
        self.image_encoder = ImageEncoder(self.config)
        self.flow_encoder = SparseEncoder(self.config)
        self.flow_decoder = FlowDecoder(self.config)

    def forward(self, image: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        n = sparse.shape[0]
        if image.dim() != 4 or sparse.dim() != 4 or image.shape[0] not in (1, n):
            raise ValueError(
                f"expected image [N or 1, 3, H, W] and sparse [N, 4, H, W], got "
                f"{tuple(image.shape)} and {tuple(sparse.shape)}"
            )
        deep, half, quarter = self.image_encoder(image)
        motion = self.flow_encoder(sparse)
        fused = torch.cat([deep.expand(n, -1, -1, -1), motion], dim=1)
        return self.flow_decoder(fused, half, quarter)


def _nearest_index(size_in: int, size_out: int) -> torch.Tensor:
    """Source index of each output row (or column) of a legacy ``"nearest"`` resize.

    ``floor(i * (size_in / size_out))`` with the scale and the product in float32, clamped to
    the input.  That is what ``F.interpolate(mode="nearest")`` computes on CUDA for every dtype
    (MOFA ran it there), while its CPU kernel uses float64 for float64 tensors and then picks
    other pixels for some sizes (a width of 448 moves 7 of 384 columns).  Spelled out here so
    the result does not depend on the device or dtype.
    """
    scale = torch.tensor(size_in, dtype=torch.float32) / size_out
    index = torch.floor(torch.arange(size_out, dtype=torch.float32) * scale).to(torch.int64)
    return index.clamp_(max=size_in - 1)


def _resize_nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Legacy nearest resize of the last two dimensions to ``size`` (see :func:`_nearest_index`)."""
    rows = _nearest_index(x.shape[-2], size[0]).to(x.device)
    cols = _nearest_index(x.shape[-1], size[1]).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _placement(network: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of the network's first parameter (CPU float32 if none)."""
    for tensor in [*network.parameters(), *network.buffers()]:
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def dense_flow(
    network: nn.Module,
    image: torch.Tensor,
    landmarks: ArrayLike,
    *,
    chunk: int = 8,
) -> torch.Tensor:
    """Dense flow of frames 1..T-1 relative to frame 0: float32 [T-1, 2, H, W] in pixels of H x W.

    ``image``: float [3, H, W] in [0, 1], the reference at the working size; ``landmarks``:
    [T, 68, 2] ``(x, y)`` pixels in that image, frame 0 being the reference's own.  ``network``
    is :class:`SparseToDenseFlow` in eval mode (or any module with its ``forward``); it runs on
    its own device and dtype, ``chunk`` frames per call, all sharing one image.  The result is
    on the network's device.  T = 1 gives an empty [0, 2, H, W].

    Steps, as MOFA's inference does them (``sample_inputs_face`` and ``get_cmp_flow`` of the
    keypoint and hybrid scripts, checked there):

    1. Unless the image is already 384x384 (then image and landmarks are used as they are), the
       image is resized to 384x384 by ``F.interpolate``'s default (legacy) ``"nearest"``, with
       the pixels CUDA picks (:func:`_nearest_index`), and landmarks are rescaled as
       ``x / W * 384`` and ``y / H * 384``.
    2. Sparse flow and its 2-channel mask are rebuilt at 384 from the rescaled landmarks
       (:func:`~faceshot_mofa.conditioning.sparse_flow`); input = ``[flow x, flow y, mask,
       mask]``.  The image goes in as ``image * 2 - 1``; the ImageNet mean/std of CMP's config
       is never applied.
    3. The logits become a flow by the expectation over bin centres
       (:func:`~faceshot_mofa.conditioning.expected_flow`, in float32), upsampled 192 -> 384
       bilinearly with ``align_corners=True``.
    4. Unless H x W is 384x384, that flow is resized to H x W (legacy ``"nearest"`` again) and
       then x is multiplied by W / 384 and y by H / 384.

    Differences from upstream, all deliberate: upstream casts the landmarks to the pipeline's
    dtype (float16, steps of 0.25 px between 256 and 512) before rescaling and building the
    sparse flow; here they stay float32.  Upstream always runs CMP in float32 (it calls
    ``.float()`` on every input) and one frame per call; here the network's own dtype is used
    (load it in float32 to match) and frames are batched, which gives the same values up to
    rounding since eval-mode batch norm treats every frame alone.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected image [3, H, W], got {tuple(image.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    if network.training:
        raise ValueError("dense_flow needs the network in eval mode (batch norm statistics)")
    if isinstance(landmarks, torch.Tensor):
        lm = landmarks.detach().to(device="cpu", dtype=torch.float32)
    else:
        lm = torch.from_numpy(np.array(landmarks, dtype=np.float32))
    if lm.dim() != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [T, 68, 2], got {tuple(lm.shape)}")

    device, dtype = _placement(network)
    config = getattr(network, "config", None)
    if not isinstance(config, CMPConfig):
        config = CMPConfig()
    h, w = image.shape[-2:]
    frames = lm.shape[0]
    out = torch.empty(max(frames - 1, 0), 2, h, w, dtype=torch.float32, device=device)
    if frames < 2:
        return out

    work = image.detach().to(torch.float32)
    same_size = (h, w) == (CMP_SIZE, CMP_SIZE)
    if not same_size:
        work = _resize_nearest(work, (CMP_SIZE, CMP_SIZE))
        lm = lm / torch.tensor([w, h], dtype=torch.float32) * CMP_SIZE
    net_image = (work * 2 - 1)[None].to(device=device, dtype=dtype)

    with torch.no_grad():
        for start in range(1, frames, chunk):
            stop = min(start + chunk, frames)
            flow, mask = sparse_flow(torch.cat([lm[:1], lm[start:stop]]), (CMP_SIZE, CMP_SIZE))
            sparse = torch.cat([flow, mask], dim=1).to(device=device, dtype=dtype)
            logits = network(net_image, sparse).to(torch.float32)
            dense = expected_flow(logits, config.nbins, config.fmax)
            if dense.shape[-2:] != (CMP_SIZE, CMP_SIZE):
                dense = interpolate(
                    dense, size=(CMP_SIZE, CMP_SIZE), mode="bilinear", align_corners=True
                )
            if not same_size:
                dense = _resize_nearest(dense, (h, w))
                dense[:, 0] *= w / CMP_SIZE
                dense[:, 1] *= h / CMP_SIZE
            out[start - 1 : stop - 1] = dense
    return out
