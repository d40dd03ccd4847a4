"""The conditioning MOFA-Video's landmark adapter reads, built from a landmark sequence.

Three pieces, each reproducing what the released weights were trained with:

* :func:`sparse_flow` - the displacement of every landmark from frame 0, written at frame 0's
  landmark pixels, plus a mask of those pixels.  CMP densifies it into a full flow field.
* :func:`landmark_images` - the landmarks drawn as coloured lines on a black 320x320 canvas
  (the training resolution) and resized to the image.  The adapter's landmark encoder has only
  ever seen this exact drawing, so runs, colours, thickness and the resize are kept as upstream.
* :func:`expected_flow` - CMP's output (per-axis classification over flow bins) turned into a
  flow by the expectation over bin centres.

Landmarks are iBUG 68-point ``(x, y)`` pixels (see :mod:`faceshot_core.schema`); frame 0 must be
the reference image's own landmarks, since every flow is relative to it.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import numpy.typing as npt
import torch

#: Side of the square canvas the landmark images are drawn on (the adapter trained at 320).
CANVAS = 320

#: The 15 runs drawn as open polylines, in drawing order (later runs paint over earlier ones).
#: Each entry is ``(name, 0-based indices, colour)``; consecutive indices are joined by a line.
#: Runs, order and colours follow upstream's ``draw_landmarks`` table (there 1-based; the eyes
#: are closed by repeating their first point, the lips are four runs each from the corners to
#: the middle of the top and of the bottom).  Colours are channel values in tensor channel order
#: 0, 1, 2, exactly as upstream writes them into its array (no BGR/RGB swap is applied anywhere).
#: "LEFT"/"RIGHT" keep upstream's names; they are not the schema's subject-side convention.
LANDMARK_RUNS: tuple[tuple[str, tuple[int, ...], tuple[int, int, int]], ...] = (
    ("face", tuple(range(0, 17)), (10, 200, 10)),
    ("left_eye", (42, 43, 44, 45, 46, 47, 42), (180, 200, 10)),
    ("left_eyebrow", (22, 23, 24, 25, 26), (180, 220, 10)),
    ("right_eye", (36, 37, 38, 39, 40, 41, 36), (10, 200, 180)),
    ("right_eyebrow", (17, 18, 19, 20, 21), (10, 220, 180)),
    ("nose_up", (27, 28, 29, 30), (10, 200, 250)),
    ("nose_down", (31, 32, 33, 34, 35), (250, 200, 10)),
    ("lips_outer_bottom_left", (54, 55, 56, 57), (10, 180, 20)),
    ("lips_outer_bottom_right", (48, 59, 58, 57), (20, 10, 180)),
    ("lips_inner_bottom_left", (64, 65, 66), (100, 100, 30)),
    ("lips_inner_bottom_right", (60, 67, 66), (100, 150, 50)),
    ("lips_outer_top_left", (51, 52, 53, 54), (20, 80, 100)),
    ("lips_outer_top_right", (51, 50, 49, 48), (80, 100, 20)),
    ("lips_inner_top_left", (62, 63, 64), (120, 100, 200)),
    ("lips_inner_top_right", (62, 61, 60), (150, 120, 100)),
)

#: Line thickness on the 320 canvas.
THICKNESS = 2

#: CMP's flow classification: bins per axis and the flow range (pixels) they span.
CMP_BINS = 99
CMP_FMAX = 50.0

ArrayLike = npt.NDArray[np.floating] | torch.Tensor


def _as_landmarks(landmarks: ArrayLike) -> torch.Tensor:
    """[T, 68, 2] float32 CPU tensor, checked; non-finite landmarks cannot be placed or drawn."""
    if isinstance(landmarks, torch.Tensor):
        lm = landmarks.detach().to(device="cpu", dtype=torch.float32)
    else:
        lm = torch.from_numpy(np.array(landmarks, dtype=np.float32))  # a copy: inputs stay ours
    if lm.dim() != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [T, 68, 2], got {tuple(lm.shape)}")
    if not bool(torch.isfinite(lm).all()):
        raise ValueError("landmarks must be finite")
    return lm


def sparse_flow(landmarks: ArrayLike, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse flow of frames 1..T-1 relative to frame 0: ``(flow, mask)``, each [T-1, 2, H, W].

    For each frame m >= 1, landmark k's displacement ``L_m[k] - L_0[k]`` (x in channel 0, y in
    channel 1) is written at pixel ``(x, y)`` of ``L_0[k]``, truncated to integers and clipped to
    ``[0, W-1]`` x ``[0, H-1]`` (truncation then clipping equals flooring then clipping).  The
    mask is 1 at those pixels in both channels, 0 elsewhere.  Landmarks are written in index
    order, so when two of them fall on one pixel the *last* (higher index) wins; upstream's
    result there is undefined (an indexed assignment with repeated indices).  Both outputs are
    float32 on the CPU.
    """
    h, w = size
    lm = _as_landmarks(landmarks)
    t = lm.shape[0]
    flow = torch.zeros(max(t - 1, 0), 2, h, w, dtype=torch.float32)
    mask = torch.zeros_like(flow)
    if t < 2:
        return flow, mask
    displacement = lm[1:] - lm[0]  # [T-1, 68, 2]
    xs = lm[0, :, 0].to(torch.int64).clamp(0, w - 1).tolist()
    ys = lm[0, :, 1].to(torch.int64).clamp(0, h - 1).tolist()
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        flow[:, :, y, x] = displacement[:, k, :]
        mask[:, :, y, x] = 1.0
    return flow, mask


def draw_landmarks(
    points: npt.NDArray[np.floating], canvas: int = CANVAS
) -> npt.NDArray[np.float64]:
    """One frame's 68 points (already in canvas pixels) drawn on a black ``canvas`` square.

    Returns float64 [canvas, canvas, 3] with channel values 0..255.  Each run of
    :data:`LANDMARK_RUNS` is drawn segment by segment with ``cv2.line`` (thickness 2, 8-connected,
    endpoints truncated to integers, no dots at the points), as upstream draws it.
    """
    image = np.zeros((canvas, canvas, 3), dtype=np.float64)
    for _name, indices, colour in LANDMARK_RUNS:
        for a, b in itertools.pairwise(indices):
            start = (int(points[a, 0]), int(points[a, 1]))
            end = (int(points[b, 0]), int(points[b, 1]))
            cv2.line(image, start, end, colour, thickness=THICKNESS)
    return image


def landmark_images(
    landmarks: ArrayLike, size: tuple[int, int], canvas: int = CANVAS
) -> torch.Tensor:
    """Landmark drawings for every frame: float32 [T, 3, H, W] in [0, 1].

    Landmarks given in the (H, W) image are rescaled to the ``canvas`` square (x by canvas/W, y
    by canvas/H), drawn by :func:`draw_landmarks`, then the *float* canvas is resized to (W, H)
    bilinearly and divided by 255.  Upstream meant a nearest resize but passed the flag where
    ``cv2.resize`` expects its output array, so the trained behaviour is bilinear.
    """
    h, w = size
    lm = _as_landmarks(landmarks).numpy().astype(np.float64)
    scale = np.array([canvas / w, canvas / h], dtype=np.float64)
    frames = []
    for points in lm:
        drawn = draw_landmarks(points * scale, canvas)
        resized = cv2.resize(drawn, (w, h), interpolation=cv2.INTER_LINEAR)
        frames.append(resized.astype(np.float32) / np.float32(255.0))
    out = np.stack(frames, axis=0) if frames else np.zeros((0, h, w, 3), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(0, 3, 1, 2)))


def bin_centres(
    nbins: int = CMP_BINS,
    fmax: float = CMP_FMAX,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Flow value (pixels) each CMP bin stands for: the centre of bin ``i`` of width
    ``step = 2 fmax / nbins`` over ``[-fmax, fmax]``, ``-fmax + (i + 0.5) step``.

    This is how CMP was trained (its loss quantises ``floor((f + fmax) / step)``) and how its
    own code reads the bins back (a fact checked in the upstream repository); the middle bin is
    0 and the end bins sit half a step inside +-fmax.
    """
    step = 2.0 * fmax / nbins
    i = torch.arange(nbins, device=device, dtype=torch.float32)
    return i * step - fmax + step / 2


def expected_flow(
    logits: torch.Tensor, nbins: int = CMP_BINS, fmax: float = CMP_FMAX
) -> torch.Tensor:
    """CMP's [B, 2 * nbins, h, w] logits to a flow [B, 2, h, w] in pixels.

    Channels ``[0, nbins)`` classify the x displacement and ``[nbins, 2 * nbins)`` the y
    displacement; each axis is a softmax over its bins, and the flow is the expectation of
    :func:`bin_centres` under it.  Computed in float32, returned in the logits' dtype.
    """
    if logits.dim() != 4 or logits.shape[1] != 2 * nbins:
        raise ValueError(f"expected logits [B, {2 * nbins}, h, w], got {tuple(logits.shape)}")
    b, _, h, w = logits.shape
    probs = torch.softmax(logits.to(torch.float32).reshape(b, 2, nbins, h, w), dim=2)
    centres = bin_centres(nbins, fmax, device=logits.device).reshape(1, 1, nbins, 1, 1)
    return (probs * centres).sum(dim=2).to(logits.dtype)
