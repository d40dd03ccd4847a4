"""Eyes and mouth that open and close like the driving face's, in the character's own proportions.

The run-by-run motion (:mod:`.motion`) moves each lid and lip on its own, and for a character
whose eye or mouth rest shape differs from the driving face's it cannot know where a lid stops:
a closed character mouth under a parted human one is driven to a negative opening, a full blink
leaves a round cartoon eye a third open.  This module replaces the *heights* of the lids and lips
(their ``y`` in the face frame, measured from the line through the part's corners) by an opening
model; everything else (the corners, the points' ``x``) keeps the run motion.

The rule
--------
Heights are divided by the part's corner distance ``W`` at the same frame, for the driving face
and for the character alike, so a human and a cartoon mouth are compared in their own units.  Per
pair of points over each other (upper lid over lower lid, upper inner lip over lower inner lip),
with ``G0`` the character's rest gap, ``g0`` the driving gap at frame 0, ``g`` the driving gap now
and ``a`` the widest driving gap so far (``a >= g0``):

* ``top = G0 + room * min(a - g0, CAP)``: opening past the driving rest opens the character by
  the same amount of its own part size (so a cat's mouth opens as far, for its width, as the
  human's); for the mouth ``room = max(1 - G0 / MOUTH_CAP, 0)``, so a mouth that is already
  open (a laughing caricature) has less room left and never opens past ``MOUTH_CAP`` of its
  width, where adding a yawn on top of a laugh would pull the chin off the picture (eyes:
  ``room = 1``);
* ``G = max(top - k (a - g), 0)`` with ``k = top / max(a, min(FLOOR, top))``: closing from the
  widest opening so far closes the character by the same *fraction* of its opening, down to 0
  when the driving face closes fully - a full blink closes the eye whatever its shape, a half
  blink half closes it, and a reference with an open mouth closes once the driving mouth has
  opened and closed (before that, frame 0 being the reference, it keeps its own opening while
  the driving face keeps its own; ``FLOOR`` stops a driving mouth that barely parted from
  closing a wide-open character by its detector noise);
* the pair's centre moves like the driving pair's centre, scaled by ``k`` as the character closes
  (so that lids meet where the driving lids meet, relative to each one's size), by 1 otherwise;
  upper and lower then sit ``G / 2`` above and below it.

``G >= 0`` for every input, so lids and lips never cross; the model is continuous in the driving
gap, and for a character that is a copy of the driving face it reproduces the driving heights
exactly.  The outer lips keep their thickness above and below the inner lips (changed by the
driving thickness change, never below zero), so the inner lips stay between the outer lips.  The
chin keeps its distance below the lower lip in proportion to the driving face's (measured in
nose lengths, which a mouth does not move), so an opening mouth takes the jaw down with it.

Closed eyes: detectors never put the lids of a shut eye together (dlib reads an opening of
about 0.1 of the eye width on a closed human eye).  So when a driving eye closes from its
frame-0 opening ``g0``, its gap is read as ``g0 (g - L) / (g0 - L)`` with ``L`` =
:data:`EYE_CLOSED_LEVEL`: a detected closed eye is a closed eye, and the character's blink
completes.  Opening wider than at frame 0 is not stretched; an eye that starts below ``2 L``
(already squinting) is not stretched at all.

Strength: each driving change is multiplied by the part's strength before the rule is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from faceshot_core.retarget.frames import MIN_SIZE

#: Largest opening beyond the reference's, in part widths (mouth) - keeps a shout on a face.
MOUTH_CAP = 1.0
#: Largest opening beyond the reference's, in eye widths.
EYE_CAP = 0.6
#: Eye opening (lid gap / eye width) at which a *detected* eye is shut.  Landmark detectors
#: never bring the lids together: on the driving videos in ``../shared/data`` dlib reads 0.08
#: and 0.14 on eyes that are visibly closed.  Driving eye closing is stretched so that this
#: level means closed (see the module docstring).
EYE_CLOSED_LEVEL = 0.13
#: A driving opening below this (in part widths) is "never really opened": see the rule.
FLOOR = 0.1
#: Largest driving height change taken into account, in part widths.
MAX_CHANGE = 2.0
#: Jaw points moved with the chin (4..12) and how much of the chin's move each takes.
JAW_WEIGHTS = {4: 0.15, 5: 0.4, 6: 0.7, 7: 0.9, 8: 1.0, 9: 0.9, 10: 0.7, 11: 0.4, 12: 0.15}
_JAW = np.array(list(JAW_WEIGHTS))
_JAW_W = np.array(list(JAW_WEIGHTS.values()))


@dataclass(frozen=True)
class PartSpec:
    """Points of one part: its corners, its pairs and (mouth) its outer layers."""

    part: str  # strength key: "eyes" or "mouth"
    corners: tuple[int, int]
    upper: tuple[int, ...]
    lower: tuple[int, ...]
    cap: float
    closed_level: float = 0.0
    room_limit: float = np.inf  # the opening never exceeds this (part widths); see the rule
    # Outer lip points and, for each, the two inner points whose mean it lies over / under.
    outer_upper: tuple[int, ...] = ()
    upper_src: tuple[tuple[int, int], ...] = ()
    outer_lower: tuple[int, ...] = ()
    lower_src: tuple[tuple[int, int], ...] = ()


SPECS = (
    PartSpec("eyes", (36, 39), (37, 38), (41, 40), EYE_CAP, EYE_CLOSED_LEVEL),
    PartSpec("eyes", (42, 45), (43, 44), (47, 46), EYE_CAP, EYE_CLOSED_LEVEL),
    PartSpec(
        "mouth", (48, 54), (61, 62, 63), (67, 66, 65), MOUTH_CAP, 0.0, MOUTH_CAP,
        (49, 50, 51, 52, 53), ((60, 61), (61, 61), (62, 62), (63, 63), (63, 64)),
        (59, 58, 57, 56, 55), ((60, 67), (67, 67), (66, 66), (65, 65), (65, 64)),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Points:
    """A flat list of points, each with the two corners its height is measured from."""

    index: np.ndarray  # [N]
    corner_a: np.ndarray  # [N]
    corner_b: np.ndarray  # [N]
    gather: np.ndarray  # [3 N]: index, corner_a, corner_b (one ``take`` for all three)

    @classmethod
    def of(cls, groups: list[tuple[tuple[int, ...], tuple[int, int]]]) -> Points:
        index = [i for points, _ in groups for i in points]
        a = [c[0] for points, c in groups for _ in points]
        b = [c[1] for points, c in groups for _ in points]
        i, ca, cb = (np.asarray(v, dtype=np.intp) for v in (index, a, b))
        return cls(i, ca, cb, np.concatenate([i, ca, cb]))


def corner_heights(f: np.ndarray, pts: Points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heights of the points above/below their corner line, in corner distances.

    ``f``: face-frame points ``x + iy``, complex ``[B, 68]``.  Returns ``(heights [B, N], line
    [B, N], width [B, N])``
    with ``y[:, index] = line + heights * width``.  The line is read at each point's ``x``
    (clamped to half a width beyond the corners), the width is floored, so degenerate parts stay
    finite.
    """
    n = len(pts.index)
    g = np.take(f, pts.gather, axis=1)
    gx, gy = g.real, g.imag
    xp, xa, xb = gx[:, :n], gx[:, n : 2 * n], gx[:, 2 * n :]
    yp, ya, yb = gy[:, :n], gy[:, n : 2 * n], gy[:, 2 * n :]
    dx = xb - xa
    dy = yb - ya
    width = np.maximum(np.hypot(dx, dy), MIN_SIZE)
    safe_dx = np.where(np.abs(dx) > 1e-6 * width, dx, 1e-6 * width)
    t = np.clip((xp - xa) / safe_dx, -0.5, 1.5)
    line = ya + t * dy
    return (yp - line) / width, line, width


@dataclass(frozen=True)
class Layout:
    """The fixed tables of the modelled parts among a selection of parts (cached)."""

    points: Points  # [2 K + 3 J]
    k: int
    j: int
    pair_part: tuple[str, ...]  # [K] strength key of each pair
    cap: np.ndarray  # [K]
    closed_level: np.ndarray  # [K]
    room_limit: np.ndarray  # [K]
    layer_sign: np.ndarray  # [J] -1 above the inner lip (upper lip), +1 below it
    inner_source: np.ndarray  # [2 J] where each inner point's height is, in (new U, new L, old)

    def thickness(self, heights: np.ndarray) -> np.ndarray:
        """Outer-lip thickness beyond the inner lips ``[B, J]`` from heights ``[B, 2K+3J]``."""
        k2, j = 2 * self.k, self.j
        inner = heights[:, k2 + j :]
        return self.layer_sign * (heights[:, k2 : k2 + j] - 0.5 * (inner[:, 0::2] + inner[:, 1::2]))


@dataclass
class OpeningModel:
    """The opening model of one retargeting call: the fixed :class:`Layout` of the modelled
    pairs, what the reference and driving frame 0 fix, and the widest driving gaps so far.

    Points are laid out as one :class:`Points` list so that each frame block needs only two
    height computations (driving and character): ``K`` upper points, their ``K`` lower points,
    then (mouth) ``J`` outer-lip points and, for each, the two inner points it lies over or
    under (``2 J``, interleaved).
    """

    layout: Layout
    strength: np.ndarray  # [K]
    stretch: np.ndarray  # [K] factor on closing motion (detected closed level -> closed)
    layer_strength: np.ndarray  # [J]
    char: np.ndarray  # [2 K + 3 J] character rest heights (corner distances)
    drive: np.ndarray  # [2 K + 3 J] driving heights at frame 0
    thick_char: np.ndarray  # [J] character outer-lip thickness at rest
    thick_drive: np.ndarray  # [J] driving outer-lip thickness at frame 0
    peak: np.ndarray  # [K] widest driving gap so far (carried from block to block)


@lru_cache(maxsize=64)
def layout(parts: tuple[str, ...]) -> Layout | None:
    """The :class:`Layout` of ``parts`` (``None`` when neither eyes nor mouth are selected)."""
    specs = [s for s in SPECS if s.part in parts]
    if not specs:
        return None
    groups = [(s.upper, s.corners) for s in specs] + [(s.lower, s.corners) for s in specs]
    mouth = [s for s in specs if s.outer_upper]
    outer: tuple[int, ...] = ()
    inner: tuple[int, ...] = ()
    if mouth:
        m = mouth[0]
        outer = m.outer_upper + m.outer_lower
        inner = tuple(i for pair in m.upper_src + m.lower_src for i in pair)
        groups += [(outer, m.corners), (inner, m.corners)]
    points = Points.of(groups)
    k = sum(len(s.upper) for s in specs)
    upper, lower = list(points.index[:k]), list(points.index[k : 2 * k])
    source = [
        upper.index(i) if i in upper else k + lower.index(i) if i in lower else 2 * k + n
        for n, i in enumerate(inner)
    ]
    return Layout(
        points, k, len(outer), tuple(s.part for s in specs for _ in s.upper),
        np.array([s.cap for s in specs for _ in s.upper]),
        np.array([s.closed_level for s in specs for _ in s.upper]),
        np.array([s.room_limit for s in specs for _ in s.upper]),
        np.repeat([-1.0, 1.0], [len(outer) // 2, len(outer) - len(outer) // 2]),
        np.asarray(source, dtype=np.intp),
    )  # fmt: skip


def prepare_openings(
    ref: np.ndarray, dri: np.ndarray, parts: tuple[str, ...], strength: dict[str, float]
) -> OpeningModel | None:
    """The :class:`OpeningModel` of the modelled parts among ``parts``, from complex face-frame
    ``[1, 68]`` points of the reference and driving frame 0 (``None`` when no part is
    modelled)."""
    lay = layout(parts)
    if lay is None:
        return None
    k = lay.k
    char, _, _ = corner_heights(ref, lay.points)
    drive, _, _ = corner_heights(dri, lay.points)
    rest_gap = drive[0, k : 2 * k] - drive[0, :k]
    return OpeningModel(
        lay, np.array([strength.get(part, 1.0) for part in lay.pair_part]),
        _stretch(rest_gap, lay.closed_level), np.full(lay.j, strength.get("mouth", 1.0)),
        char[0], drive[0], lay.thickness(char)[0], lay.thickness(drive)[0],
        np.maximum(rest_gap, 0.0),
    )  # fmt: skip


def _stretch(rest_gap: np.ndarray, lv: np.ndarray) -> np.ndarray:
    """``g0 / (g0 - L)`` where the driving rest gap ``g0`` is at least ``2 L``, else 1."""
    ok = (lv > 0) & (rest_gap >= 2 * lv)
    return np.where(ok, rest_gap / np.where(ok, rest_gap - lv, 1.0), 1.0)


def move_openings(model: OpeningModel, f: np.ndarray, dri: np.ndarray) -> None:
    """Set the lid/lip heights of the character's complex face-frame points ``f`` (``[B, 68]``,
    in place) from the driving face's ``dri``."""
    lay, s = model.layout, model.strength
    k, pts = lay.k, lay.points
    drive, _, _ = corner_heights(dri, pts)
    change = drive[:, : 2 * k] - model.drive[: 2 * k]
    change *= np.concatenate([s, s])
    np.clip(change, -MAX_CHANGE, MAX_CHANGE, out=change)
    d_up, d_low = change[:, :k], change[:, k:]
    closing = (d_low - d_up) < 0
    d_up *= np.where(closing, model.stretch, 1.0)
    d_low *= np.where(closing, model.stretch, 1.0)

    g0 = np.maximum(model.drive[k : 2 * k] - model.drive[:k], 0.0)
    raw_gap = g0 + d_low - d_up  # [B, K]
    gap = np.maximum(raw_gap, 0.0)
    peak = np.maximum(np.maximum.accumulate(gap, axis=0), model.peak)
    model.peak = peak[-1].copy()
    # A pair of a (repaired) reference can sit a hair below zero in corner-line heights when the
    # corner line is tilted; that part is carried through unchanged (``deficit``), so frame 0
    # stays the reference, and the face-frame projection keeps the pair valid.
    signed = model.char[k : 2 * k] - model.char[:k]
    rest = np.maximum(signed, 0.0)
    deficit = signed - rest
    room = np.clip(1.0 - rest / lay.room_limit, 0.0, 1.0)
    top = rest + room * np.minimum(peak - g0, lay.cap)
    close_gain = top / np.maximum(np.maximum(peak, np.minimum(FLOOR, top)), 1e-12)
    opening = np.maximum(top - close_gain * (peak - gap), 0.0)
    closed = np.where(top > 0, 1.0 - opening / np.where(top > 0, top, 1.0), 0.0)
    shift = (1.0 + (close_gain - 1.0) * closed) * 0.5 * (d_up + d_low)
    centre = 0.5 * (model.char[:k] + model.char[k : 2 * k]) + np.clip(
        shift, -MAX_CHANGE, MAX_CHANGE
    )
    # Below zero (a pair a hair across in corner-line heights, or detector noise) the driving
    # gap is carried through as it is: the face-frame projection closes a real crossing.
    opening += deficit + np.minimum(raw_gap, 0.0)

    # Corners are not moved here, so each point's line and width stay valid after the update.
    char, line, width = corner_heights(f, pts)
    new = np.concatenate([centre - 0.5 * opening, centre + 0.5 * opening], axis=1)
    if lay.j:
        both = np.concatenate([new, char[:, 2 * k + lay.j :]], axis=1)
        inner = both[:, lay.inner_source]
        change_t = lay.thickness(drive) - model.thick_drive
        thick0 = model.thick_char
        thick = thick0 + np.clip(model.layer_strength * change_t, -MAX_CHANGE, MAX_CHANGE)
        thick = np.maximum(thick, np.minimum(thick0, 0.0))
        outer = 0.5 * (inner[:, 0::2] + inner[:, 1::2]) + lay.layer_sign * thick
        new = np.concatenate([new, outer], axis=1)
    n = new.shape[1]
    f.imag[:, pts.index[:n]] = line[:, :n] + new * width[:, :n]


@dataclass(frozen=True)
class JawModel:
    """The chin's rest distance below the lower lip, for the character and the driving face."""

    strength: float
    char_gap: float  # character: (chin - lower lip) / nose length, at rest
    drive_gap: float  # driving face, frame 0


def _nose(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Nose length (27 -> 33, vertical), floored at a tenth of the face width."""
    width = np.maximum(x[:, 16] - x[:, 0], MIN_SIZE)
    return np.maximum(np.abs(y[:, 33] - y[:, 27]), 0.1 * width)


def _jaw_gap(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(chin 8 - lower lip 57) / nose length, per frame."""
    return (y[:, 8] - y[:, 57]) / _nose(y, x)


def prepare_jaw(
    ref_x: np.ndarray, ref_y: np.ndarray, dri_x: np.ndarray, dri_y: np.ndarray, strength: float
) -> JawModel:
    """The :class:`JawModel` from face-frame ``[1, 68]`` points."""
    return JawModel(strength, float(_jaw_gap(ref_x, ref_y)[0]), float(_jaw_gap(dri_x, dri_y)[0]))


def move_jaw(
    model: JawModel, x: np.ndarray, y: np.ndarray, dri_x: np.ndarray, dri_y: np.ndarray
) -> None:
    """Put the chin below the (already moved) lower lip, dragging the jaw with weights."""
    ratio = _jaw_gap(dri_x, dri_y) / max(model.drive_gap, 0.05)
    ratio = np.clip(1.0 + model.strength * (ratio - 1.0), 0.3, 3.0)
    chin = y[:, 57] + model.char_gap * ratio * _nose(y, x)
    y[:, _JAW] += _JAW_W * (chin - y[:, 8])[:, None]
