"""The landmark editor's logic: template from three clicks, mirror a side, labels, undo.

The browser half of the editor only drags points and collects clicks; everything that decides
where points go lives here, in plain numpy, so that it can be tested without a browser or Gradio.
Points are iBUG 68 pixel ``(x, y)`` (see :mod:`faceshot_core.schema`); every function returns a
new float64 array and never modifies its input.

"Right" and "left" are the *character's* sides, as in the iBUG scheme: the character's right eye
(points 37-42 in 1-based numbering, 36-41 here) appears on the image's LEFT.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import OUTSIDE_TOLERANCE, check_image_size
from faceshot_core.schema import LEFT_EYE, MOUTH, NUM_POINTS, RIGHT_EYE
from faceshot_core.synthetic_faces import mean_face

#: The three anchors the user clicks, in this order.  "right eye" is the character's right eye,
#: which appears on the image LEFT (iBUG 36-41); "left eye" appears on the image right.
ANCHOR_NAMES: tuple[str, str, str] = ("right eye centre", "left eye centre", "mouth centre")

#: Left/right symmetric index pairs; the first member is the character's right side (image left
#: in an upright face), the second its mirror image.
MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),  # jaw
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),  # brows
    (31, 35), (32, 34),  # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56),  # outer lips
    (60, 64), (61, 63), (67, 65),  # inner lips
)  # fmt: skip
#: Points on the face's symmetry axis; mirroring leaves them where they are.
MIDLINE: tuple[int, ...] = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)

# Three clicks closer to a line than this (twice the triangle's area over its longest side
# squared; 0.87 for an equilateral triangle, about 0.78 for the mean face) fix no useful affine
# transform: a click error would shear the whole template.
_MIN_TRIANGLE_SHAPE = 0.03
_FIRST = np.array([a for a, _ in MIRROR_PAIRS])
_SECOND = np.array([b for _, b in MIRROR_PAIRS])


def _as_points(points: ArrayLike, what: str = "landmarks") -> np.ndarray:
    """A float64 copy of ``points`` as ``[68, 2]``, or the one-line error the page shows."""
    try:
        arr = np.array(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidLandmarksError(f"{what}: points are not numeric ({exc})") from exc
    if arr.shape != (NUM_POINTS, 2):
        raise InvalidLandmarksError(f"{what}: expected [68, 2] points, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise InvalidLandmarksError(f"{what}: NaN or infinite coordinate")
    return arr


def anchors_of(points: ArrayLike) -> np.ndarray:
    """Right-eye, left-eye and mouth centres ``[3, 2]``: the means of 36-41, 42-47 and 48-67.

    The same definitions place the template and could show where its anchors are, so a template
    placed on three clicks has exactly those clicks as its anchors.
    """
    arr = _as_points(points)
    return np.stack([arr[list(part)].mean(axis=0) for part in (RIGHT_EYE, LEFT_EYE, MOUTH)])


def _as_click(point: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.array(point, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidLandmarksError(f"the {name} is not a point ({exc})") from exc
    if arr.shape != (2,) or not np.isfinite(arr).all():
        raise InvalidLandmarksError(f"the {name} must be a finite (x, y) point, got {point!r}")
    return arr


def template_from_anchors(
    right_eye: ArrayLike, left_eye: ArrayLike, mouth: ArrayLike
) -> np.ndarray:
    """The mean face placed so its eye and mouth centres land exactly on the three clicks.

    Three correspondences fix an affine transform, not just a similarity, so a character's
    wide-set eyes or low mouth are captured by shear and unequal scaling and the user drags
    fewer points afterwards.  Clicks in mirrored order (the linear part's determinant < 0, as
    when the two eyes are swapped) are accepted and give a mirrored template, which the user
    sees at once and can redo; an upside-down character (its right eye on the image right, the
    mouth above the eyes) is a rotation, not a mirror, and is placed the right way round.
    Nearly collinear or coinciding clicks are refused with :class:`InvalidLandmarksError`.
    """
    dst = np.stack(
        [_as_click(p, n) for p, n in zip((right_eye, left_eye, mouth), ANCHOR_NAMES, strict=True)]
    )
    sides = dst[[1, 2, 0]] - dst
    longest_sq = float((sides**2).sum(axis=1).max())
    if longest_sq == 0.0:
        raise InvalidLandmarksError("the three anchor clicks coincide; click the eyes and mouth")
    a, b = sides[0], dst[2] - dst[0]
    if abs(a[0] * b[1] - a[1] * b[0]) < _MIN_TRIANGLE_SHAPE * longest_sq:
        raise InvalidLandmarksError(
            "the three anchor clicks are (nearly) on one line; click both eyes and the mouth"
        )
    template = mean_face(1)
    src = np.hstack([anchors_of(template), np.ones((3, 1))])
    affine = np.linalg.solve(src, dst)  # [3, 2]: rows are the x, y and offset coefficients
    return np.asarray(np.hstack([template, np.ones((NUM_POINTS, 1))]) @ affine, dtype=np.float64)


def _line_fit(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Total-least-squares line: centroid, unit normal, and the spread along the line."""
    centre = points.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh((points - centre).T @ (points - centre))
    return centre, eigvecs[:, 0], float(np.sqrt(eigvals[1] / len(points)))


def _symmetry_axis(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and unit normal of the face's symmetry axis, fitted to the pairs' midpoints.

    Midpoints rather than the midline points, so that dragged midline points do not tilt it;
    one refit without the pairs far off the first line, so that a single badly dragged point
    (the very one the user wants to repair by mirroring) does not tilt it either.
    """
    mids = 0.5 * (points[_FIRST] + points[_SECOND])
    scale = float(np.sqrt(((points - points.mean(axis=0)) ** 2).sum(axis=1).mean()))
    centre, normal, spread = _line_fit(mids)
    if spread <= 1e-9 * scale:
        raise InvalidLandmarksError(
            "cannot find the face's symmetry axis: the left/right point pairs are centred on "
            "one spot"
        )
    residual = np.abs((mids - centre) @ normal)
    inliers = residual <= 3.0 * np.median(residual) + 1e-9 * scale
    centre, normal, _ = _line_fit(mids[inliers])
    return centre, normal


def mirror_side(points: ArrayLike, keep: Literal["image_left", "image_right"]) -> np.ndarray:
    """Copy one side of the face onto the other, reflected across the face's symmetry axis.

    Lets the user place one eye, brow and half of the mouth carefully and get the other half for
    free.  ``keep`` names the side as the user sees it: which member of each
    :data:`MIRROR_PAIRS` pair is on the image left is decided for the whole face by where the
    character's right-side points lie relative to the axis, so that for an upright face
    "image_left" keeps the first members (36-41 etc.), and for an upside-down or mirrored one
    it still keeps what is shown on the left.  :data:`MIDLINE` points stay where they are.
    """
    if keep not in ("image_left", "image_right"):
        raise ValueError(f"keep must be 'image_left' or 'image_right', got {keep!r}")
    out = _as_points(points)
    centre, normal = _symmetry_axis(out)
    first_side = float(((out[_FIRST] - out[_SECOND]) @ normal).mean())
    first_on_left = first_side * normal[0] <= 0.0
    keep_first = first_on_left == (keep == "image_left")
    kept, replaced = (_FIRST, _SECOND) if keep_first else (_SECOND, _FIRST)
    offset = (out[kept] - centre) @ normal
    out[replaced] = out[kept] - 2.0 * offset[:, None] * normal
    return out


# Hover-label descriptions per run of points, in index order; sides are the character's.
_LABEL_RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jaw", ("right end (by the ear)", "right cheek", "right cheek, lower", "right jaw angle",
             "right jaw, below the angle", "right jawline", "right of the chin",
             "right chin edge", "chin", "left chin edge", "left of the chin", "left jawline",
             "left jaw, below the angle", "left jaw angle", "left cheek, lower", "left cheek",
             "left end (by the ear)")),
    ("right brow", ("outer end", "outer arch", "middle", "inner arch", "inner end")),
    ("left brow", ("inner end", "inner arch", "middle", "outer arch", "outer end")),
    ("nose", ("bridge top (between the eyes)", "bridge, upper", "bridge, lower", "tip",
              "right nostril wing", "right nostril", "below the tip (columella)",
              "left nostril", "left nostril wing")),
    ("right eye", ("outer corner", "upper lid, outer", "upper lid, inner", "inner corner",
                   "lower lid, inner", "lower lid, outer")),
    ("left eye", ("inner corner", "upper lid, inner", "upper lid, outer", "outer corner",
                  "lower lid, outer", "lower lid, inner")),
    ("outer lips", ("right corner", "upper lip, right side", "upper lip, right peak",
                    "upper lip, top centre (cupid's bow)", "upper lip, left peak",
                    "upper lip, left side", "left corner", "lower lip, left side",
                    "lower lip, left of centre", "lower lip, bottom centre",
                    "lower lip, right of centre", "lower lip, right side")),
    ("inner lips", ("right corner", "upper, right", "upper, centre", "upper, left",
                    "left corner", "lower, left", "lower, centre", "lower, right")),
)  # fmt: skip


def point_labels() -> tuple[str, ...]:
    """68 hover labels, "37 right eye: outer corner": 1-based, as iBUG users number the points.

    Sides are the character's (right = image left), the convention of every iBUG chart.
    """
    runs = [(part, desc) for part, descs in _LABEL_RUNS for desc in descs]
    return tuple(f"{i + 1} {part}: {desc}" for i, (part, desc) in enumerate(runs))


class EditHistory:
    """An undo stack of point arrays: the sequence of states, the current one last.

    Bounded (the oldest states are dropped beyond ``limit``) so that a long editing session
    cannot grow the server's memory without end.  States are stored as read-only copies and
    handed out as fresh copies, so no caller can change the history behind its back.
    """

    def __init__(self, limit: int = 200) -> None:
        if limit < 1:
            raise ValueError(f"the history limit must be at least 1, got {limit}")
        self.limit = limit
        self._states: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._states)

    @property
    def current(self) -> np.ndarray | None:
        """The last recorded points (a copy), or ``None`` before anything was recorded."""
        return self._states[-1].copy() if self._states else None

    @property
    def can_undo(self) -> bool:
        return len(self._states) >= 2

    def record(self, points: ArrayLike) -> bool:
        """Store ``points`` as the new current state unless they equal it (within 1e-6 px).

        The page reports every finished gesture, including a click that moved nothing; those
        must not fill the history with copies that undo would step through one by one.
        """
        arr = _as_points(points)
        if self._states and np.allclose(arr, self._states[-1], rtol=0.0, atol=1e-6):
            return False
        arr.setflags(write=False)
        self._states.append(arr)
        del self._states[: max(0, len(self._states) - self.limit)]
        return True

    def undo(self) -> np.ndarray | None:
        """Drop the current state and return the one before it; ``None`` (no change) if none."""
        if not self.can_undo:
            return None
        self._states.pop()
        return self._states[-1].copy()

    def reset(self, points: ArrayLike | None = None) -> None:
        """Forget everything (a new image); start from ``points`` when given."""
        self._states.clear()
        if points is not None:
            self.record(points)


def clamp_to_image(points: ArrayLike, image_size: tuple[int, int]) -> np.ndarray:
    """Move points back into the range a landmark set may occupy for an image of this size.

    That range is the one :func:`faceshot_core.landmarks.check_points` accepts (the image plus
    :data:`~faceshot_core.landmarks.OUTSIDE_TOLERANCE` of its size on each side, since a face
    partly out of frame has points beyond the border), so a point dragged off the picture, or a
    template placed near an edge, never makes a landmark set the rest of faceshot refuses.
    """
    width, height = check_image_size(image_size, "the image")
    size = np.array([width, height], dtype=np.float64)
    return np.clip(_as_points(points), -OUTSIDE_TOLERANCE * size, (1 + OUTSIDE_TOLERANCE) * size)
