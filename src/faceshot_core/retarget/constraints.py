"""Last step of the retargeting: every frame obeys the rules of :mod:`faceshot_core.anatomy`.

The expression model (:mod:`.expression`) already moves lids and lips so that they cannot pass
through each other; this projection is what makes validity hold *by construction* for any
input, including the parts it does not model (brows, nose, jaw) and degenerate characters.

It works on face-frame points (``[B, 68]``, ``y`` down; see
:func:`faceshot_core.anatomy.face_frame`) and moves points vertically, top to bottom, except
for the corners' order (step 4):

1. a lid or lip pair that crossed is closed at its midpoint (a closed eye or mouth, which is
   what a crossing was heading for);
2. each mouth column is walked from the nostrils down: outer upper lip at least ``margin``
   below the nostrils, inner upper lip not above the outer upper lip, inner lower lip not above
   the inner upper lip, outer lower lip not above the inner lower lip, chin at least ``margin``
   below the outer lower lip.  Each step only pushes the lower point down, so a later step
   cannot undo an earlier one;
3. a brow is lifted to at least ``margin`` above the lid under it;
4. the eye corners (36, 39, 42, 45) and the mouth corners (48, 54 and 60, 64) are kept in
   left-to-right order, each pushed right of the one before it (horizontally only).

Margins are a fraction (:data:`MARGIN`) of the same gap in the reference, so the reference (frame
0) is never moved, and a part that comes close to its neighbour stops short of it the way it does
on the character's own face.

:func:`sanitize_reference` applies the same rules with zero margins to the reference itself: a
few 300-W annotations list the inner lips or lids in swapped order (the upper inner lip's points
on the lower lip), which is fixed by swapping the labels back, and a slight crossing (-1 px on
a closed mouth) is closed at its midpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceshot_core.anatomy import BROW_PAIRS, EYELID_PAIRS, INNER_LIP_PAIRS, face_frame

#: Gap kept between neighbouring parts, as a fraction of their gap in the reference.
MARGIN = 0.25

# Mouth columns, top to bottom: nostril, outer upper, inner upper, inner lower, outer lower, chin.
_COLUMNS = np.array(
    [
        [32, 50, 61, 67, 58, 7],
        [33, 51, 62, 66, 57, 8],
        [34, 52, 63, 65, 56, 9],
    ]
).T  # [6, 3]: row k is level k of the three columns
_PAIR_A = np.array([a for a, _ in EYELID_PAIRS + INNER_LIP_PAIRS])
_PAIR_B = np.array([b for _, b in EYELID_PAIRS + INNER_LIP_PAIRS])
_BROW = np.array([a for a, _ in BROW_PAIRS])
_LID = np.array([b for _, b in BROW_PAIRS])
#: Points kept in left-to-right order, each at least a margin right of the one before.
_ROWS = ((36, 39, 42, 45), (48, 54), (60, 64))
_ROW_A = np.array([a for row in _ROWS for a in row[:-1]])
_ROW_B = np.array([b for row in _ROWS for b in row[1:]])
#: Smallest horizontal margin, as a fraction of the face width (the order rule is strict).
MIN_ORDER_GAP = 1e-3


@dataclass(frozen=True)
class Margins:
    """Gaps (face-frame pixels of the reference) kept between neighbouring parts."""

    nose: np.ndarray  # [3] nostrils -> outer upper lip, per column
    jaw: np.ndarray  # [3] outer lower lip -> chin
    brow: np.ndarray  # [4] brow -> upper lid
    order: np.ndarray  # [5] left-to-right neighbours (eye corners, mouth corners)

    @classmethod
    def of(cls, x_ref: np.ndarray, y_ref: np.ndarray, fraction: float = MARGIN) -> Margins:
        """Margins from the reference's face-frame coordinates ``[68]``."""

        def gap(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
            return fraction * np.maximum(y_ref[lower] - y_ref[upper], 0.0)

        width = max(float(x_ref[16] - x_ref[0]), 0.0)
        order = np.maximum(fraction * (x_ref[_ROW_B] - x_ref[_ROW_A]), MIN_ORDER_GAP * width)
        return cls(gap(_COLUMNS[0], _COLUMNS[1]), gap(_COLUMNS[4], _COLUMNS[5]),
                   gap(_BROW, _LID), order)  # fmt: skip


def project(x: np.ndarray, y: np.ndarray, margins: Margins) -> None:
    """Move face-frame points ``x``, ``y`` (``[B, 68]``, in place) until every frame is valid.

    Vertical rules move points vertically (see the module docstring); the left-to-right order of
    the eye and mouth corners is kept by pushing each corner right of the one before it.
    """
    for a, b, m in zip(_ROW_A, _ROW_B, margins.order, strict=True):
        x[:, b] = np.maximum(x[:, b], x[:, a] + m)

    a, b = y[:, _PAIR_A], y[:, _PAIR_B]
    mid = 0.5 * (a + b)
    crossed = a > b
    y[:, _PAIR_A] = np.where(crossed, mid, a)
    y[:, _PAIR_B] = np.where(crossed, mid, b)

    level = y[:, _COLUMNS[0]]
    extra = (margins.nose, 0.0, 0.0, 0.0, margins.jaw)
    for k in range(1, len(_COLUMNS)):
        level = np.maximum(y[:, _COLUMNS[k]], level + extra[k - 1])
        y[:, _COLUMNS[k]] = level

    y[:, _BROW] = np.minimum(y[:, _BROW], y[:, _LID] - margins.brow)


def _swapped(y: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> bool:
    """All pairs of a run upside down: the annotation swapped the two lines."""
    return all(y[a] > y[b] for a, b in pairs)


def sanitize_reference(points: np.ndarray) -> np.ndarray:
    """The reference ``[68, 2]`` made valid with the smallest change (see the module docstring).

    A valid reference is returned unchanged (bit for bit); float64 in, float64 out.
    """
    p = np.array(points, dtype=np.float64, copy=True)
    x, y = face_frame(p)
    swapped = False
    for pairs in (INNER_LIP_PAIRS, EYELID_PAIRS[:2], EYELID_PAIRS[2:]):
        if _swapped(y, pairs):
            upper = [a for a, _ in pairs]
            lower = [b for _, b in pairs]
            p[upper + lower] = p[lower + upper]
            swapped = True
    if swapped:
        x, y = face_frame(p)
    fx, fy = x[None].copy(), y[None].copy()
    project(fx, fy, Margins.of(x, y, 0.0))
    dx, dy = fx[0] - x, fy[0] - y
    moved = np.flatnonzero((dx != 0) | (dy != 0))
    if len(moved) == 0:
        return p
    # Move the changed points by their face-frame change.
    axis = p[16] - p[0]
    norm = float(np.hypot(*axis))
    right = axis / norm if norm > 0 else np.array([1.0, 0.0])
    down = np.array([-right[1], right[0]])
    p[moved] += dx[moved, None] * right + dy[moved, None] * down
    return p
