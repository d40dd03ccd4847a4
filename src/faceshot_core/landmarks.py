"""In-memory landmark types: one face ``[68, 2]`` and a sequence ``[M, 68, 2]``.

Points are pixel ``(x, y)`` float32 in iBUG 68 order (see :mod:`faceshot_core.schema`), always
carried together with the size of the image they live in, because every consumer (rendering,
retargeting bounds, animators that work at 512x512) needs it and a bare array cannot say it.

Construction validates: wrong shape, NaN/inf or points far outside the image raise
:class:`~faceshot_core.errors.InvalidLandmarksError` naming where the data came from.  Landmarks of
a face partly out of frame may legitimately sit a little outside the image, so only points
further than :data:`OUTSIDE_TOLERANCE` of the image size beyond its border are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.schema import LEFT_EYE_OUTER_CORNER, NUM_POINTS, RIGHT_EYE_OUTER_CORNER

#: How far beyond the image border (as a fraction of width/height) a point may lie.
OUTSIDE_TOLERANCE = 0.5
#: Frame rate assumed for a landmark sequence that records none (saved without a video).
DEFAULT_FPS = 25.0

ImageSize = tuple[int, int]
"""``(width, height)`` in pixels."""


def check_image_size(image_size: object, source: str = "landmarks") -> ImageSize:
    """Return ``image_size`` as ``(width, height)`` ints, or raise naming ``source``."""
    try:
        width, height = (int(v) for v in image_size)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise InvalidLandmarksError(
            f"{source}: image size must be (width, height), got {image_size!r}"
        ) from exc
    if width <= 0 or height <= 0:
        raise InvalidLandmarksError(f"{source}: image size must be positive, got {width}x{height}")
    return width, height


def check_points(
    points: object, image_size: ImageSize, *, sequence: bool, source: str = "landmarks"
) -> np.ndarray:
    """Validate and convert landmark points to a C-contiguous float32 array.

    ``sequence`` selects the expected rank: ``[M, 68, 2]`` when true, ``[68, 2]`` otherwise.
    """
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidLandmarksError(f"{source}: points are not numeric ({exc})") from exc
    expected = "[M, 68, 2]" if sequence else "[68, 2]"
    rank_ok = arr.ndim == 3 if sequence else arr.ndim == 2
    if not rank_ok or arr.shape[-2:] != (NUM_POINTS, 2):
        raise InvalidLandmarksError(
            f"{source}: expected points of shape {expected}, got {list(arr.shape)}"
        )
    if sequence and arr.shape[0] == 0:
        raise InvalidLandmarksError(f"{source}: the landmark sequence has no frames")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite.all(axis=-1))[0]
        raise InvalidLandmarksError(f"{source}: NaN or infinite coordinate at {_where(bad)}")
    width, height = image_size
    lo = -OUTSIDE_TOLERANCE * np.array([width, height])
    hi = (1 + OUTSIDE_TOLERANCE) * np.array([width, height])
    outside = ((arr < lo) | (arr > hi)).any(axis=-1)
    if outside.any():
        bad = np.argwhere(outside)[0]
        x, y = arr[tuple(bad)]
        raise InvalidLandmarksError(
            f"{source}: point at {_where(bad)} is ({x:.1f}, {y:.1f}), far outside the "
            f"{width}x{height} image"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _where(index: np.ndarray) -> str:
    if len(index) == 2:
        return f"frame {index[0]}, point {index[1]}"
    return f"point {index[0]}"


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """68 landmarks of one face in an image of ``image_size`` = ``(width, height)``."""

    points: np.ndarray
    image_size: ImageSize
    source: str = field(default="landmarks", compare=False)

    def __post_init__(self) -> None:
        size = check_image_size(self.image_size, self.source)
        object.__setattr__(self, "image_size", size)
        pts = check_points(self.points, size, sequence=False, source=self.source)
        pts.setflags(write=False)
        object.__setattr__(self, "points", pts)

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners (the 300-W NME normaliser)."""
        return float(
            np.linalg.norm(self.points[LEFT_EYE_OUTER_CORNER] - self.points[RIGHT_EYE_OUTER_CORNER])
        )

    def bbox(self) -> tuple[float, float, float, float]:
        """Tight box ``(x0, y0, x1, y1)`` around the points."""
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclass(frozen=True, eq=False)
class LandmarkSequence:
    """Landmarks of one face over ``M`` frames, with per-frame flags.

    ``interpolated[m]`` is true where frame ``m`` had no detection and its points were filled in
    from neighbouring frames.  ``fps`` is the frame rate of the video the sequence follows, when
    known.
    """

    points: np.ndarray
    image_size: ImageSize
    fps: float | None = None
    interpolated: np.ndarray | None = None
    source: str = field(default="landmarks", compare=False)

    def __post_init__(self) -> None:
        size = check_image_size(self.image_size, self.source)
        object.__setattr__(self, "image_size", size)
        pts = check_points(self.points, size, sequence=True, source=self.source)
        pts.setflags(write=False)
        object.__setattr__(self, "points", pts)
        flags = (
            np.zeros(len(pts), dtype=bool)
            if self.interpolated is None
            else np.asarray(self.interpolated, dtype=bool).copy()
        )
        if flags.shape != (len(pts),):
            raise InvalidLandmarksError(
                f"{self.source}: {len(pts)} frames but {flags.size} interpolation flags"
            )
        flags.setflags(write=False)
        object.__setattr__(self, "interpolated", flags)
        if self.fps is not None:
            fps = float(self.fps)
            if not np.isfinite(fps) or fps <= 0:
                raise InvalidLandmarksError(f"{self.source}: fps must be positive, got {self.fps}")
            object.__setattr__(self, "fps", fps)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __getitem__(self, m: int) -> FaceLandmarks:
        return FaceLandmarks(self.points[m], self.image_size, source=f"{self.source}[{m}]")

    def __iter__(self) -> Iterator[FaceLandmarks]:
        return (self[m] for m in range(len(self)))

    @property
    def flags(self) -> np.ndarray:
        """Per-frame interpolation flags (bool ``[M]``); never ``None`` after construction."""
        assert self.interpolated is not None
        return self.interpolated

    @classmethod
    def from_faces(
        cls, faces: list[FaceLandmarks], fps: float | None = None, source: str = "landmarks"
    ) -> LandmarkSequence:
        """Stack single-face landmarks (all of one image size) into a sequence."""
        if not faces:
            raise InvalidLandmarksError(f"{source}: the landmark sequence has no frames")
        sizes = {f.image_size for f in faces}
        if len(sizes) != 1:
            raise InvalidLandmarksError(f"{source}: frames have different image sizes {sizes}")
        return cls(np.stack([f.points for f in faces]), faces[0].image_size, fps, source=source)
