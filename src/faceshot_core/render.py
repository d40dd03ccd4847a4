"""Drawing landmarks: overlays on images and video frames, and pose images.

Overlays are for people checking a result (points and contour lines on the picture); pose
images (lines on black) are what landmark-conditioned animators take as input.  Colours follow
the five parts of :data:`faceshot_core.schema.PARTS` so that a swapped eye and brow is visible at a
glance.  Drawing is anti-aliased with sub-pixel precision (OpenCV ``shift``), because 1 px
matters when judging a tracker.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from faceshot_core.schema import CONNECTIONS, NUM_POINTS, PARTS

#: RGB colour per part.
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "face_boundary": (255, 210, 0),
    "eyebrows": (255, 110, 30),
    "nose": (60, 200, 255),
    "eyes": (40, 255, 120),
    "mouth": (255, 60, 160),
}

_POINT_COLORS = np.zeros((NUM_POINTS, 3), dtype=np.int32)
for _name, _indices in PARTS.items():
    _POINT_COLORS[list(_indices)] = PART_COLORS[_name]

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT


def _line_width(image_shape: tuple[int, ...]) -> int:
    return max(1, round(min(image_shape[:2]) / 256))


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    *,
    lines: bool = True,
    dots: bool = True,
    color: tuple[int, int, int] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Return a copy of an RGB uint8 image with 68 landmarks drawn on it.

    ``color`` overrides the per-part colours (useful to overlay two sets, e.g. ground truth and
    prediction).  The input image is never modified.
    """
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    pts = np.asarray(points, dtype=np.float64).reshape(NUM_POINTS, 2)
    fixed = np.rint(pts * _SCALE).astype(np.int32)
    width = thickness if thickness is not None else _line_width(canvas.shape)
    if lines:
        for a, b in CONNECTIONS:
            c = color if color is not None else tuple(int(v) for v in _POINT_COLORS[a])
            cv2.line(canvas, tuple(fixed[a]), tuple(fixed[b]), c, width, cv2.LINE_AA, _SHIFT)
    if dots:
        radius = (width + 1) * _SCALE
        for i in range(NUM_POINTS):
            c = color if color is not None else tuple(int(v) for v in _POINT_COLORS[i])
            cv2.circle(canvas, tuple(fixed[i]), radius, c, -1, cv2.LINE_AA, _SHIFT)
    return canvas


def pose_image(points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Landmark lines on black at ``image_size`` = ``(width, height)``: an animator's input."""
    width, height = image_size
    blank = np.zeros((height, width, 3), dtype=np.uint8)
    return draw_landmarks(blank, points, dots=False, thickness=max(2, _line_width(blank.shape)))


def overlay_frames(
    frames: Iterable[np.ndarray], sequence: np.ndarray, *, flags: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Draw ``sequence[m]`` on the ``m``-th frame, streaming.

    Frames whose landmarks were interpolated (``flags[m]``) are drawn in grey, so a viewer sees
    where the detector lost the face.
    """
    for m, frame in enumerate(frames):
        if m >= len(sequence):
            break
        grey = flags is not None and bool(flags[m])
        yield draw_landmarks(frame, sequence[m], color=(150, 150, 150) if grey else None)


def overlay_on_still(image: np.ndarray, sequence: np.ndarray) -> Iterator[np.ndarray]:
    """Draw each frame of a landmark sequence on the same still image, streaming."""
    for points in sequence:
        yield draw_landmarks(image, points)
