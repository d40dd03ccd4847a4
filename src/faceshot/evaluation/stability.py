"""Temporal stability of a result: shimmering landmarks and a flickering background.

Two kinds of instability spoil an animation that is right frame by frame:

* landmark *jitter*: the face shimmers.  Measured with the definition the detector and the
  smoother are tuned with (:func:`faceshot_core.detection.stability.jitter`: median over frames
  of the points' second difference / sqrt 3, as a fraction of the inter-ocular distance), on
  the landmarks found on the result and on the reposed sequence itself, so a jittery result can
  be told apart from a jittery input.  On the result only triples of consecutive frames that
  all have a face count: a filled-in gap is no measurement.
* background *flicker*: diffusion animators often repaint the background a little differently
  every frame.  The mean absolute frame-to-frame change (0-1 scale) of the pixels outside the
  face, where the face is the convex hull of the reposed landmarks dilated by
  :data:`FACE_MARGIN` face widths, in either of the two frames.  Hair and neck that move with
  the head beyond that margin count as change too, so compare backends on the same clip.

The video is streamed: two frames and two masks in memory, whatever its length.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from faceshot.evaluation.report import Figure, Series, measured
from faceshot.evaluation.tracking import ResultTracking
from faceshot_core.anatomy import face_width
from faceshot_core.detection.stability import interocular, jitter, jitter_per_frame
from faceshot_core.progress import ProgressSink, StageReporter
from faceshot_core.video import iter_frames

__all__ = ["FACE_MARGIN", "face_mask", "flicker", "found_jitter", "stability_figures"]

#: Dilation of the landmarks' hull, in face widths (jaw 0 to 16): covers the forehead and the
#: cheeks' edge, which the 68 points leave out.
FACE_MARGIN = 0.3
_DIRECTIONS = np.stack(
    [np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)),
     np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))], axis=1
)  # fmt: skip


def found_jitter(points: np.ndarray, found: np.ndarray) -> float:
    """Jitter over the triples of consecutive frames that all have a face (NaN if none)."""
    pts = np.asarray(points, dtype=np.float64)
    ok = np.asarray(found, dtype=bool)
    if len(pts) < 3:
        return float("nan")
    valid = ok[:-2] & ok[1:-1] & ok[2:]
    if not valid.any():
        return float("nan")
    per_frame = jitter_per_frame(np.where(ok[:, None, None], pts, 0.0))
    return float(np.median(per_frame[valid])) / interocular(pts[ok])


def face_mask(
    points: np.ndarray, shape: tuple[int, ...], margin: float = FACE_MARGIN
) -> np.ndarray:
    """Bool ``[H, W]``: the convex hull of ``[68, 2]`` points dilated by ``margin`` face widths.

    The dilation is exact up to the polygon's 24 directions: the hull of a ring of points
    around every landmark is the hull's Minkowski sum with that ring.
    """
    p = np.asarray(points, dtype=np.float64)
    radius = margin * float(face_width(p))
    ring = (p[:, None, :] + radius * _DIRECTIONS[None]).reshape(-1, 2)
    hull = cv2.convexHull(np.round(ring).astype(np.int32))
    mask = np.zeros(shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def flicker(
    video: str | os.PathLike[str],
    reposed: np.ndarray,
    *,
    progress: ProgressSink | None = None,
) -> np.ndarray:
    """``[M - 1]`` mean absolute change (0-1) outside the face from frame ``m`` to ``m + 1``.

    NaN for a pair where the face (in either frame) covers the whole picture.
    """
    faces = np.asarray(reposed, dtype=np.float64)
    out: list[float] = []
    step = StageReporter(progress, "flicker", len(faces))
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for m, frame in enumerate(iter_frames(video)):
        if m >= len(faces):
            break
        mask = face_mask(faces[m], frame.shape)
        if previous is not None:
            before, before_mask = previous
            outside = ~(mask | before_mask)
            if outside.any():
                change = cv2.absdiff(frame, before)[outside]
                out.append(float(change.mean()) / 255.0)
            else:
                out.append(float("nan"))
        previous = (frame, mask)
        step.step()
    return np.asarray(out, dtype=np.float64)


def stability_figures(
    tracking: ResultTracking, reposed: np.ndarray, pairs: np.ndarray
) -> tuple[list[Figure], dict[str, Series]]:
    """Jitter of the result's and the sequence's landmarks, and the background flicker."""
    if not tracking.sampled.all():
        why = f"needs every frame tracked ({tracking.tracker} looked at some only)"
    else:
        why = "fewer than three consecutive frames of the result have a face"
    values = pairs[np.isfinite(pairs)]
    figures = [
        measured("stability.result_jitter", found_jitter(tracking.points, tracking.found), why),
        measured("stability.sequence_jitter", jitter(np.asarray(reposed, dtype=np.float64))),
        measured(
            "stability.background_flicker",
            float(values.mean()) if values.size else float("nan"),
            "no frame pair has pixels outside the face"
            if len(pairs)
            else "a one-frame result has no frame-to-frame change",
        ),
    ]
    frames = list(range(1, len(pairs) + 1))
    return figures, {"stability.background_flicker": Series(frames=frames, values=pairs.tolist())}
