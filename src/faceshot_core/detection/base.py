"""The detector contract: a face box type and the :class:`FaceDetector` protocol.

A driving-video detector has to answer four questions, and the tracker
(:mod:`faceshot_core.detection.tracking`) combines them:

* *where are the faces?* - :meth:`FaceDetector.detect` on the whole frame (slow), or near a
  box from the previous frame (``near=``: a small search, fast), which is how the tracker
  checks every frame that the face it follows is still there;
* *where are the 68 points, given a box?* - :meth:`FaceDetector.landmarks`;
* *is this new face real?* - :meth:`FaceDetector.confirm`, a second opinion asked only when
  the tracker is about to start following a face (a track started on a false detection would
  be followed for good);
* *which box would this detector draw around these points?* -
  :meth:`FaceDetector.box_from_landmarks`.  Landmark models are trained on their own
  detector's boxes (dlib's HOG box is square and sits low on the face, RetinaFace's is
  taller), so a box derived from the previous frame's points must imitate that geometry to keep
  the landmark model in the conditions it was trained for.

Images are RGB ``uint8`` ``[H, W, 3]`` arrays and every coordinate is in pixels of the image
passed in: a detector that works on a downscaled copy maps its results back itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box ``(x0, y0, x1, y1)`` in pixels, with a detector score.

    ``score`` is detector-specific (dlib's SVM margin, RetinaFace's probability) and only
    comparable between boxes of the same detector.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0

    @property
    def size(self) -> float:
        """Geometric mean of width and height: one number for "how big is this face"."""
        return math.sqrt(max(self.width, 0.0) * max(self.height, 0.0))

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @classmethod
    def around(cls, cx: float, cy: float, width: float, height: float, score: float = 0.0) -> Box:
        """The box of the given size centred on ``(cx, cy)``."""
        return cls(cx - width / 2.0, cy - height / 2.0, cx + width / 2.0, cy + height / 2.0, score)

    def scaled(self, factor: float) -> Box:
        """The box grown (``factor > 1``) or shrunk about its centre."""
        cx, cy = self.center
        return Box.around(cx, cy, self.width * factor, self.height * factor, self.score)

    def mapped(self, scale: float, dx: float = 0.0, dy: float = 0.0) -> Box:
        """Coordinates multiplied by ``scale`` then shifted: maps between image resolutions."""
        return Box(
            self.x0 * scale + dx,
            self.y0 * scale + dy,
            self.x1 * scale + dx,
            self.y1 * scale + dy,
            self.score,
        )

    def iou(self, other: Box) -> float:
        """Intersection over union (0 for disjoint or empty boxes)."""
        ix = min(self.x1, other.x1) - max(self.x0, other.x0)
        iy = min(self.y1, other.y1) - max(self.y0, other.y0)
        if ix <= 0 or iy <= 0:
            return 0.0
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def fraction_inside(self, width: int, height: int) -> float:
        """Share of the box's area that lies inside a ``width`` x ``height`` image."""
        if self.area <= 0:
            return 0.0
        ix = min(self.x1, width) - max(self.x0, 0.0)
        iy = min(self.y1, height) - max(self.y0, 0.0)
        return max(ix, 0.0) * max(iy, 0.0) / self.area

    def distance(self, other: Box) -> float:
        """Distance between the two centres, in pixels."""
        (ax, ay), (bx, by) = self.center, other.center
        return math.hypot(ax - bx, ay - by)


@runtime_checkable
class FaceDetector(Protocol):
    """What the tracker needs from a face detector + 68-point landmark model.

    Implementations: :class:`~faceshot_core.detection.dlib_detector.DlibDetector` (default,
    offline) and :class:`~faceshot_core.detection.fan_detector.FanDetector` (the paper's
    RetinaFace + AWing FAN, optional extra ``faceshot[fan]``).
    """

    #: Registry name, also recorded in cache keys.
    name: str

    def detect(self, image: np.ndarray, near: Box | None = None) -> list[Box]:
        """Face boxes in ``image``, best score first.

        With ``near`` (a face box from the previous frame) only the neighbourhood of that box
        is searched; this is the tracker's cheap per-frame "is the face still here?" check.
        """
        ...

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The 68 iBUG points (float32 ``[68, 2]``, image pixels) of the face in ``box``."""
        ...

    def box_from_landmarks(self, points: np.ndarray) -> Box:
        """The box this detector would draw around a face with these 68 points."""
        ...

    def confirm(self, image: np.ndarray, box: Box) -> bool:
        """A second opinion before the tracker starts following a new face at ``box``.

        Called rarely (when a face is first acquired or re-acquired), so it may be slow; a
        detector precise enough on its own simply returns ``True``.
        """
        ...

    def cache_key(self) -> str:
        """A string that changes whenever the detector's results could change (model, settings)."""
        ...


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """A copy of ``image`` whose longer side is at most ``max_side``, and the scale applied.

    Whole-frame face *detection* does not need full resolution (faces in driving videos are
    large) and its cost grows with the pixel count, so large frames are searched on a smaller
    copy; landmarks are then fitted on the full frame.  ``scale`` is ``small / original``
    (1.0 when nothing was done).
    """
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / float(max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def check_frame(image: np.ndarray) -> np.ndarray:
    """Accept an RGB ``uint8`` ``[H, W, 3]`` frame (or a greyscale ``[H, W]`` one)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(
            f"expected an RGB uint8 [H, W, 3] frame, got {arr.dtype} {list(arr.shape)}"
        )
    return arr
