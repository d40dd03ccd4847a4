"""Mapping between the reference image and a backend's working frame size, both ways.

A model that works at, say, 512 px on the short side in multiples of 64 must still accept a
781x1040 character and give back a 781x1040 video whose face sits exactly where the
reference's does.  :class:`FrameMapping` is the one affine map (a scale per axis and an
offset) that takes reference pixels to working pixels: the runner applies it to the reference
image and every landmark before the backend sees them, and its inverse to every frame the
backend yields.  The rules (pad, crop, stretch) are described in
:class:`~faceshot_backends.capabilities.WorkingSize`.

Padding repeats the edge pixels rather than adding black bars: a generative model conditioned
on a black border tends to animate it, and the border is cut away again on the way back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np

from faceshot_backends.capabilities import WorkingSize
from faceshot_backends.request import AnimationRequest, Runtime

Size = tuple[int, int]  # (width, height)


def resize_frame(frame: np.ndarray, size: Size) -> np.ndarray:
    """``frame`` at ``size`` = ``(width, height)`` (area filter down, bicubic up)."""
    h, w = frame.shape[:2]
    if (w, h) == tuple(size):
        return frame
    shrink = size[0] * size[1] < w * h
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def warp_affine(image: np.ndarray, matrix: np.ndarray, size: Size) -> np.ndarray:
    """``image`` resampled so that destination pixel ``matrix @ (x, y, 1)`` = source ``(x, y)``.

    Pixel-index coordinates.  Large reductions are area-averaged first (``warpAffine`` has no
    area filter), then placed with a bicubic warp; borders repeat the edge pixels.
    """
    inverse = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    kx, ky = abs(inverse[0, 0]), abs(inverse[1, 1])
    if kx * ky > 1.5:
        small = cv2.resize(image, None, fx=1.0 / kx, fy=1.0 / ky, interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
        # source index -> small index: (i + 0.5) * f - 0.5 (cv2.resize's pixel-area convention)
        to_small = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        inverse = (to_small @ np.vstack([inverse, [0, 0, 1]]))[:2]
        image = small
    return cv2.warpAffine(image, inverse, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def _to_multiple(value: float, multiple: int, mode: str) -> int:
    if mode == "up":
        n = math.ceil(value / multiple - 1e-9)
    elif mode == "down":
        n = math.floor(value / multiple + 1e-9)
    else:
        n = round(value / multiple)
    return max(1, n) * multiple


@dataclass(frozen=True)
class FrameMapping:
    """``working = reference * scale + offset``; ``region`` is what the output shows.

    ``region`` = ``(x0, y0, width, height)`` in reference pixels: the whole image for ``pad``
    and ``stretch``, the part inside the canvas for ``crop``.  ``output_size`` is the size of
    the frames given back (the region's size unless the caller asks for another).
    """

    reference_size: Size
    working_size: Size
    scale: tuple[float, float]
    offset: tuple[float, float]
    region: tuple[float, float, float, float]
    output_size: Size

    @classmethod
    def identity(cls, size: Size, output_size: Size | None = None) -> FrameMapping:
        w, h = size
        return cls(size, size, (1.0, 1.0), (0.0, 0.0), (0.0, 0.0, float(w), float(h)),
                   output_size or size)  # fmt: skip

    @classmethod
    def fit(
        cls,
        reference_size: Size,
        rule: WorkingSize | None,
        *,
        focus: tuple[float, float] | None = None,
        output_size: Size | None = None,
    ) -> FrameMapping:
        """The mapping of a ``reference_size`` image into ``rule`` (``None``: no mapping).

        ``focus`` (reference pixels, e.g. the face centre) is where a crop is centred.
        """
        w, h = reference_size
        if rule is None:
            return cls.identity(reference_size, output_size)
        m = rule.multiple
        if rule.width is not None and rule.height is not None:
            canvas = (rule.width, rule.height)
        else:
            s = rule.short_side / min(w, h) if rule.short_side else 1.0
            mode = {"pad": "up", "crop": "down", "stretch": "nearest"}[rule.fit]
            canvas = (_to_multiple(w * s, m, mode), _to_multiple(h * s, m, mode))
        cw, ch = canvas
        if rule.fit == "stretch":
            scale = (cw / w, ch / h)
            return cls(reference_size, canvas, scale, (0.0, 0.0), (0.0, 0.0, float(w), float(h)),
                       output_size or reference_size)  # fmt: skip
        s = min(cw / w, ch / h) if rule.fit == "pad" else max(cw / w, ch / h)
        if rule.fit == "pad":
            offset = ((cw - w * s) / 2.0, (ch - h * s) / 2.0)
            region = (0.0, 0.0, float(w), float(h))
            out = output_size or reference_size
        else:
            fx, fy = focus if focus is not None else (w / 2.0, h / 2.0)
            ox = float(np.clip(cw / 2.0 - fx * s, cw - w * s, 0.0))
            oy = float(np.clip(ch / 2.0 - fy * s, ch - h * s, 0.0))
            offset = (ox, oy)
            region = (-ox / s, -oy / s, cw / s, ch / s)
            out = output_size or (max(2, round(cw / s)), max(2, round(ch / s)))
        return cls(reference_size, canvas, (s, s), offset, region, out)

    @property
    def is_identity(self) -> bool:
        return (self.working_size == self.reference_size and self.scale == (1.0, 1.0)
                and self.offset == (0.0, 0.0))  # fmt: skip

    # -- reference -> working ----------------------------------------------------------------

    def points_to_working(self, points: np.ndarray) -> np.ndarray:
        """Landmarks (any leading shape, last axis x, y) in working pixels."""
        scale = np.asarray(self.scale, dtype=np.float32)
        return (np.asarray(points, dtype=np.float32) * scale
                + np.asarray(self.offset, dtype=np.float32))  # fmt: skip

    def image_to_working(self, image: np.ndarray) -> np.ndarray:
        """The reference image placed on the working canvas (edges repeated where padded)."""
        if self.is_identity:
            return image
        return warp_affine(image, self._forward(), self.working_size)

    def _forward(self) -> np.ndarray:
        return np.array([[self.scale[0], 0.0, self.offset[0]],
                         [0.0, self.scale[1], self.offset[1]]], dtype=np.float64)  # fmt: skip

    # -- working -> output -------------------------------------------------------------------

    def points_to_output(self, points: np.ndarray) -> np.ndarray:
        """Reference-pixel landmarks in output-frame pixels (for overlays)."""
        x0, y0, rw, rh = self.region
        ow, oh = self.output_size
        factor = np.array([ow / rw, oh / rh], dtype=np.float32)
        return (np.asarray(points, dtype=np.float32) - np.array([x0, y0], np.float32)) * factor

    def frame_to_output(self, frame: np.ndarray) -> np.ndarray:
        """A working-size frame cut to the region and brought to the output size."""
        if self.is_identity and self.output_size == self.reference_size:
            return frame
        x0, y0, rw, rh = self.region
        ow, oh = self.output_size
        # reference pixel -> output pixel, composed with working pixel -> reference pixel
        to_output = np.array([[ow / rw, 0.0, -x0 * ow / rw], [0.0, oh / rh, -y0 * oh / rh],
                              [0.0, 0.0, 1.0]])  # fmt: skip
        to_reference = np.vstack([cv2.invertAffineTransform(self._forward()), [0, 0, 1]])
        return warp_affine(frame, (to_output @ to_reference)[:2], (ow, oh))


def working_size_of(backend_cls: Any, options: Any = None) -> WorkingSize | None:
    """The working size ``backend_cls`` uses with ``options``.

    A backend whose working size depends on an option (a resolution knob) answers through its
    ``working_size(options)`` classmethod (contract 2.1); otherwise, and without options, the
    declared ``capabilities.working_size`` holds.
    """
    hook = getattr(backend_cls, "working_size", None)
    if options is not None and callable(hook):
        return cast(WorkingSize | None, hook(options))
    return cast(WorkingSize | None, backend_cls.capabilities.working_size)


def working_request(
    image: np.ndarray,
    reference_points: np.ndarray,
    sequence: np.ndarray,
    *,
    fps: float,
    runtime: Runtime,
    working_size: WorkingSize | None,
    interpolated: np.ndarray | None = None,
    output_size: Size | None = None,
) -> tuple[AnimationRequest, FrameMapping]:
    """The request a backend sees (everything at its working size) and the way back.

    Crops are centred on the reference face (the mean of its landmarks).
    """
    h, w = image.shape[:2]
    focus = tuple(float(v) for v in np.asarray(reference_points).mean(axis=0))
    mapping = FrameMapping.fit((w, h), working_size, focus=focus,  # type: ignore[arg-type]
                               output_size=output_size)  # fmt: skip
    request = AnimationRequest(
        reference_image=mapping.image_to_working(image),
        reference_landmarks=mapping.points_to_working(reference_points),
        sequence=mapping.points_to_working(sequence),
        interpolated=interpolated, fps=fps, runtime=runtime,
    )  # fmt: skip
    return request, mapping
