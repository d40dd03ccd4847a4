"""Which face to follow when the driving video shows several: the user's choice, checked.

A driving video with two people (an interview, a duet) needs a way to say which one drives the
character.  :data:`FaceChoice` is that choice, applied once, when the tracker first acquires a
face (after that it follows the face it took, see :mod:`~faceshot_core.detection.tracking`):

* ``"auto"`` (default): among the faces at least 70 % as large as the largest, the one nearest
  the frame centre - the subject of a driving video is big and central;
* ``"largest"``: the face with the largest box;
* an ``int`` ``i``: the ``i``-th face, counted from 0 **left to right** by the centre of its box,
  among the faces of the first frame where any face is found (negative counts from the right,
  as in Python: ``-1`` is the rightmost).  Only faces that the detector confirms
  (:meth:`~faceshot_core.detection.base.FaceDetector.confirm`) count, so a false detection on a
  badge does not shift the numbering.  An index beyond the faces found is an error, not a
  silent fallback: the user asked for a face that is not there;
* a point ``(x, y)`` in the video's pixels: the face whose box contains it (the nearest centre
  if several do), else the face whose centre is nearest to it.

Left to right, because it is what a user sees in a frame and does not depend on the detector's
scores; a point, because it survives re-encoding and cropping of other parts of the frame and is
easy to read off a video player.  :func:`parse_face_choice` reads the same choices from text
(``auto``, ``largest``, ``1``, ``320,180``) for command lines and settings files.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

from faceshot_core.detection.base import Box
from faceshot_core.errors import FaceshotUserError

FaceChoice = Literal["auto", "largest"] | int | tuple[float, float]

#: In the ``"auto"`` rule, faces at least this share of the largest one's area compete on
#: distance to the frame centre.
PROMINENT_AREA = 0.7


class FaceChoiceError(FaceshotUserError, ValueError):
    """An invalid face choice, or one that names a face the video does not show."""


def check_face_choice(value: object) -> FaceChoice:
    """``value`` as a :data:`FaceChoice` (a list ``[x, y]`` becomes a tuple), or raise
    :class:`FaceChoiceError` with a one-line message."""
    if isinstance(value, str) and value in ("auto", "largest"):
        return value  # type: ignore[return-value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # (a bool is an int to Python, never a face index to a user)
    if isinstance(value, tuple | list) and len(value) == 2 and all(map(_is_number, value)):
        x, y = float(value[0]), float(value[1])
        if math.isfinite(x) and math.isfinite(y):
            return (x, y)
    raise FaceChoiceError(
        f"face choice {value!r} is not 'auto', 'largest', an index or a point (x, y) in pixels"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def parse_face_choice(text: str) -> FaceChoice:
    """A face choice from text: ``auto``, ``largest``, an index (``0``, ``-1``) or ``x,y``."""
    raw = text.strip().lower()
    if raw in ("auto", "largest"):
        return raw  # type: ignore[return-value]
    try:
        if "," in raw:
            x, y = raw.split(",")
            return check_face_choice((float(x), float(y)))
        return check_face_choice(int(raw))
    except ValueError as exc:
        if isinstance(exc, FaceChoiceError):
            raise
        raise FaceChoiceError(
            f"face choice {text!r} is not 'auto', 'largest', an index (0 = leftmost) or 'x,y'"
        ) from None


def face_choice_key(choice: FaceChoice) -> str:
    """A short stable text form (for cache keys)."""
    if isinstance(choice, tuple):
        return f"at{choice[0]:g},{choice[1]:g}"
    return str(choice)


def rank_faces(boxes: list[Box], choice: FaceChoice, width: int, height: int) -> list[Box]:
    """``boxes`` in order of preference under ``choice`` (``"auto"``, ``"largest"`` or a point).

    An index is not a preference order (it needs the confirmed faces, see
    :func:`pick_index`); given one, this returns the boxes left to right.
    """
    if not boxes:
        return []
    if choice == "largest":
        return sorted(boxes, key=lambda b: -b.area)
    if isinstance(choice, tuple):
        point = Box.around(choice[0], choice[1], 0.0, 0.0)

        def outside(b: Box) -> bool:
            return not (b.x0 <= choice[0] <= b.x1 and b.y0 <= choice[1] <= b.y1)

        return sorted(boxes, key=lambda b: (outside(b), point.distance(b)))
    if isinstance(choice, int):
        return left_to_right(boxes)
    largest = max(b.area for b in boxes)
    centre = Box.around(width / 2.0, height / 2.0, 0.0, 0.0)
    return sorted(boxes, key=lambda b: (b.area < PROMINENT_AREA * largest, centre.distance(b)))


def left_to_right(boxes: list[Box]) -> list[Box]:
    """Boxes ordered by the x of their centres (then y, for a tie)."""
    return sorted(boxes, key=lambda b: (b.center[0], b.center[1]))


def pick_index(confirmed: list[Box], index: int, frame: int) -> Box:
    """The ``index``-th of ``confirmed`` left to right; :class:`FaceChoiceError` if absent.

    ``frame`` (0-based) is only for the message: the user needs to know which frame was
    counted.
    """
    ordered = left_to_right(confirmed)
    if -len(ordered) <= index < len(ordered):
        return ordered[index]
    count = len(ordered)
    faces = f"{count} face{'s' if count != 1 else ''}"
    valid = f" (indices 0-{count - 1}, left to right)" if count > 1 else " (index 0)"
    raise FaceChoiceError(
        f"face index {index} is out of range: frame {frame}, the first with a face, "
        f"shows {faces}{valid}"
    )
