"""The reference's own mouth interior, carried by the lips: upper teeth with the upper lip.

A reference with parted lips shows its interior: teeth, tongue, the dark gap between them.  The
mesh's inner-mouth triangles stretch that content between the moving lips, which smears the
teeth as the mouth opens and folds them into a zig-zag as it closes.  Instead the interior is
split, once per reference, into two layers along the darkest line between the lips (the gap
between upper and lower teeth, where a split shows nothing):

* the *upper layer* hangs from the upper inner lip: for each column of the inner-lip contour it
  keeps its depth below the lip (rotated and scaled with the head), so the upper teeth move with
  the upper lip and are never stretched;
* the *lower layer* stands on the lower inner lip the same way.

Each layer is a strip of quads between the lip contour and the split line, warped piecewise
affinely (a few dozen pixels, so plain numpy indexing is fast enough).  Opening the mouth pulls
the layers apart (the cavity shows between them); closing it slides them behind each other, the
upper in front, both clipped by the destination inner-lip contour - no stretching, no zig-zag, no
half-transparent ghost.  At the reference's own landmarks the two layers tile the interior
exactly, so nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceshot_backends.warp_engine.contours import CONTOURS
from faceshot_backends.warp_engine.geometry import cross
from faceshot_backends.warp_engine.raster import SHIFT, Box

_LOOP = CONTOURS["inner_lips"]
#: Inner-lip contour columns, corner 60 to corner 64: upper lip vertices and the lower lip
#: vertices facing them.
UPPER = list(_LOOP[:9])
LOWER = [_LOOP[0], *_LOOP[8:][::-1]]
_MIN_GAP = 1.5  # px: a reference gap narrower than this shows no interior
_OVERLAP = 1.5  # px: each layer reaches this far past the split, under the other one
_FLAT_PROFILE = 25.0  # grey levels: a darker line than this between the lips is the split


@dataclass(frozen=True)
class Layer:
    """One frame's layer: its colours and coverage (0..1) over a pixel box."""

    colour: np.ndarray  # [h, w, 3] float32
    alpha: np.ndarray  # [h, w] float32


def head_scale(reference: np.ndarray, points: np.ndarray) -> float:
    """How much bigger the head is than in the reference (outer eye corners 36 - 45)."""
    ref = float(np.hypot(*(reference[45] - reference[36])))
    return float(np.hypot(*(points[45] - points[36]))) / ref if ref > 1e-6 else 1.0


def mouth_rotation(reference: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
    """2x2 rotation (corner line 60 -> 64) times ``scale``, from the reference to ``points``."""
    a, b = reference[64] - reference[60], points[64] - points[60]
    angle = np.arctan2(b[1], b[0]) - np.arctan2(a[1], a[0])
    if np.hypot(*a) < 1e-6 or np.hypot(*b) < 1e-6:
        angle = 0.0
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s], [s, c]])


class LipLayers:
    """The reference's mouth interior as an upper and a lower layer carried by the lips.

    ``image`` is the reference (RGB uint8) and ``vertices`` its mesh vertices.  ``empty`` when
    the reference's lips (nearly) touch: there is no interior to carry.
    """

    def __init__(self, image: np.ndarray, vertices: np.ndarray) -> None:
        self._image = image
        self._ref = vertices[:68]
        upper, lower = vertices[UPPER], vertices[LOWER]
        gap = lower - upper
        self.empty = float(np.hypot(*gap.T).max()) < _MIN_GAP
        self.split = 0.5 if self.empty else _darkest_line(image, upper, gap)
        split = upper + self.split * gap
        self._upper_ref = _strip(upper, split, _OVERLAP)
        self._lower_ref = _strip(lower, split, _OVERLAP)

    def layer(self, vertices: np.ndarray, box: Box) -> Layer | None:
        """Both layers for destination ``vertices`` over ``box``, the upper one in front."""
        if self.empty:
            return None
        scale = head_scale(self._ref, vertices[:68])
        rot = mouth_rotation(self._ref, vertices[:68], scale)
        src, dst = [], []
        for (lip_ref, deep_ref), lip in ((self._lower_ref, LOWER), (self._upper_ref, UPPER)):
            lip_dst = vertices[lip]
            src.append(np.vstack([lip_ref, deep_ref]))
            dst.append(np.vstack([lip_dst, lip_dst + (deep_ref - lip_ref) @ rot.T]))
        x0, y0, x1, y1 = box
        shape = (y1 - y0, x1 - x0)
        d = np.vstack([dst[0][_STRIP_TRIANGLES], dst[1][_STRIP_TRIANGLES]]) - (x0, y0)
        s = np.vstack([src[0][_STRIP_TRIANGLES], src[1][_STRIP_TRIANGLES]])
        colour, reached = self._colour(s, d, shape)
        alpha = np.zeros(shape, dtype=np.float32)
        for strip in dst:
            np.maximum(alpha, _coverage(strip - (x0, y0), shape), out=alpha)
        alpha[~reached] = 0.0  # (a sliver the grown id map missed: never far-away colours)
        return Layer(colour, alpha)

    def _colour(
        self, src: np.ndarray, dst: np.ndarray, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reference warped from triangles ``src`` onto ``dst`` (box pixels), later on top.

        Triangle ids are rasterised in order (the upper strip's last, so it is in front),
        grown by 3 px to cover the anti-aliased rims, and each pixel's affine is gathered with
        ``cv2.LUT``; pixels no triangle reaches are sent far out and reported (the second
        result is where a triangle reached).
        """
        area = cross(dst[:, 0], dst[:, 1], dst[:, 2])
        ok = np.abs(area) > 1e-3
        drawn = np.zeros(shape, dtype=np.uint8)  # id + 1; 0 where no triangle is
        fixed = np.rint(dst * (1 << SHIFT)).astype(np.int32)
        for t in np.flatnonzero(ok):
            cv2.fillConvexPoly(drawn, fixed[t], int(t) + 1, cv2.LINE_8, SHIFT)
        ids = np.asarray(cv2.dilate(drawn, np.ones((7, 7), np.uint8)))
        dh = np.concatenate([dst.transpose(0, 2, 1), np.ones((len(dst), 1, 3))], axis=1)
        dh[~ok] = np.eye(3)
        affine = src.transpose(0, 2, 1) @ np.linalg.inv(dh)  # box pixel -> reference
        table = np.zeros((6, 256), dtype=np.float32)
        table[2, 0] = table[5, 0] = -1e4
        table[:, 1 : len(dst) + 1] = affine.reshape(len(dst), 6).T
        xs = np.arange(shape[1], dtype=np.float32)[None, :]
        ys = np.arange(shape[0], dtype=np.float32)[:, None]
        a, b, c, e, f, g = (cv2.LUT(ids, table[k]) for k in range(6))
        map_x, map_y = a * xs + b * ys + c, e * xs + f * ys + g
        colour = cv2.remap(
            self._image, map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_REFLECT_101
        )
        return np.asarray(colour, dtype=np.float32), ids > 0


def _coverage(strip: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Coverage (0..1) of a strip (9 lip points, then 9 deep ones; box pixels).

    Anti-aliased along the split only: on the lip side and round the corners the outline runs
    2 px outside the inner lips (where the mouth's own mask is zero), so no cavity shows through
    a layer's rim there.
    """
    lip, deep = strip[:9], strip[9:].copy()
    out_dir = lip - deep  # away from the split, and from the strip's middle at the corners
    flat = np.hypot(*out_dir.T) < 0.5
    out_dir[flat] = lip[flat] - strip.mean(axis=0)
    out_dir /= np.maximum(np.hypot(*out_dir.T), 1e-6)[:, None]
    deep[[0, -1]] = lip[[0, -1]] + 2.0 * out_dir[[0, -1]]  # the corners, where lip = split
    outline = np.vstack([lip + 2.0 * out_dir, deep[::-1]])
    canvas = np.zeros(shape, dtype=np.uint8)
    fixed = np.rint(outline * (1 << SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 255, cv2.LINE_AA, SHIFT)
    return canvas.astype(np.float32) * np.float32(1.0 / 255.0)


def _strip_triangles() -> np.ndarray:
    """Triangles of a strip: lip points 0..8, deep points 9..17, one quad per column pair."""
    tris = []
    for i in range(8):
        tris += [(i, i + 1, 10 + i), (i, 10 + i, 9 + i)]
    return np.array(tris, dtype=np.intp)


_STRIP_TRIANGLES = _strip_triangles()


def _strip(lip: np.ndarray, split: np.ndarray, overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """A layer's reference strip: the lip points, and the split points pushed ``overlap`` px on.

    The push goes away from the lip, so the two layers overlap a little at the split (at the
    reference they show the same pixels there) instead of leaving a hairline of cavity.
    """
    reach = split - lip
    length = np.hypot(*reach.T)[:, None]
    push = np.where(length > 1e-6, reach / np.maximum(length, 1e-6), 0.0)
    return lip.copy(), split + push * np.minimum(overlap, length)


def _darkest_line(image: np.ndarray, upper: np.ndarray, gap: np.ndarray) -> float:
    """Fraction of the way from the upper to the lower inner lip where the split goes.

    The darkest line across the middle columns (the gap between upper and lower teeth, or the
    back of an open mouth) when one stands out; else halfway.
    """
    ts = np.linspace(0.1, 0.9, 17)
    cols = [2, 3, 4, 5, 6]  # the middle of the mouth; the corners are slivers
    pts = upper[cols, None, :] + ts[None, :, None] * gap[cols, None, :]  # [5, 17, 2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    samples = cv2.remap(
        grey, pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32), cv2.INTER_LINEAR,
        None, cv2.BORDER_REPLICATE,
    )  # fmt: skip
    profile = np.convolve(samples.mean(axis=0), np.ones(3) / 3, mode="same")
    profile[[0, -1]] = samples.mean(axis=0)[[0, -1]]
    if profile.max() - profile.min() < _FLAT_PROFILE:
        return 0.5
    return float(ts[int(np.argmin(profile))])
