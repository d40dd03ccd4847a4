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

* ``top = G0 + min(a - g0, CAP)``: opening past the driving rest opens the character by the same
  amount of its own part size (so a cat's mouth opens as far, for its width, as the human's);
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

Strength: each driving change is multiplied by the part's strength before the rule is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from faceshot_core.retarget.frames import MIN_SIZE

#: Largest opening beyond the reference's, in part widths (mouth) - keeps a shout on a face.
MOUTH_CAP = 1.0
#: Largest opening beyond the reference's, in eye widths.
EYE_CAP = 0.6
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
    # Outer lip points and, for each, the two inner points whose mean it lies over / under.
    outer_upper: tuple[int, ...] = ()
    upper_src: tuple[tuple[int, int], ...] = ()
    outer_lower: tuple[int, ...] = ()
    lower_src: tuple[tuple[int, int], ...] = ()


SPECS = (
    PartSpec("eyes", (36, 39), (37, 38), (41, 40), EYE_CAP),
    PartSpec("eyes", (42, 45), (43, 44), (47, 46), EYE_CAP),
    PartSpec(
        "mouth", (48, 54), (61, 62, 63), (67, 66, 65), MOUTH_CAP,
        (49, 50, 51, 52, 53), ((60, 61), (61, 61), (62, 62), (63, 63), (63, 64)),
        (59, 58, 57, 56, 55), ((60, 67), (67, 67), (66, 66), (65, 65), (65, 64)),
    ),
)  # fmt: skip


def corner_heights(
    x: np.ndarray, y: np.ndarray, corners: tuple[int, int], idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heights of points ``idx`` above/below the corner line, in corner distances.

    ``x``, ``y``: face-frame ``[B, 68]``.  Returns ``(heights [B, n], line [B, n], width [B, 1])``:
    ``y[:, idx] = line + heights * width``.  The line is read at each point's ``x`` (clamped to
    half a width beyond the corners), the width is floored, so degenerate parts stay finite.
    """
    a, b = corners
    dx = x[:, b : b + 1] - x[:, a : a + 1]
    dy = y[:, b : b + 1] - y[:, a : a + 1]
    width = np.maximum(np.hypot(dx, dy), MIN_SIZE)
    safe_dx = np.where(np.abs(dx) > 1e-6 * width, dx, 1e-6 * width)
    t = np.clip((x[:, idx] - x[:, a : a + 1]) / safe_dx, -0.5, 1.5)
    line = y[:, a : a + 1] + t * dy
    return (y[:, idx] - line) / width, line, width


@dataclass
class PartModel:
    """What one part needs across frames: the rest state and the widest driving opening so far."""

    spec: PartSpec
    strength: float
    char_upper: np.ndarray  # [K] character rest heights (corner distances)
    char_lower: np.ndarray
    drive_upper: np.ndarray  # [K] driving heights at frame 0
    drive_lower: np.ndarray
    thick_char: np.ndarray  # [J_up + J_low] character outer-lip thickness at rest
    thick_drive: np.ndarray  # [J_up + J_low] driving thickness at frame 0
    peak: np.ndarray = field(init=False)  # [K] widest driving gap so far

    def __post_init__(self) -> None:
        self.peak = self.rest_gap_drive.copy()

    @property
    def rest_gap_drive(self) -> np.ndarray:
        return np.maximum(self.drive_lower - self.drive_upper, 0.0)


def _idx(values: tuple[int, ...]) -> np.ndarray:
    return np.asarray(values, dtype=np.intp)


def _thickness(x: np.ndarray, y: np.ndarray, spec: PartSpec) -> np.ndarray:
    """Outer-lip thickness over/under the inner lips, in corner distances, ``[B, J_up + J_low]``."""
    if not spec.outer_upper:
        return np.zeros((len(x), 0))
    src = _idx(tuple(i for pair in spec.upper_src + spec.lower_src for i in pair))
    inner, _, _ = corner_heights(x, y, spec.corners, src)
    inner = 0.5 * (inner[:, 0::2] + inner[:, 1::2])
    outer, _, _ = corner_heights(x, y, spec.corners, _idx(spec.outer_upper + spec.outer_lower))
    n_up = len(spec.outer_upper)
    return np.concatenate([inner[:, :n_up] - outer[:, :n_up], outer[:, n_up:] - inner[:, n_up:]], 1)


def prepare_parts(
    ref_x: np.ndarray, ref_y: np.ndarray, dri_x: np.ndarray, dri_y: np.ndarray,
    parts: tuple[str, ...], strength: dict[str, float],
) -> list[PartModel]:  # fmt: skip
    """One :class:`PartModel` per modelled part among ``parts``, from face-frame ``[1, 68]``."""
    models = []
    for spec in SPECS:
        if spec.part not in parts:
            continue
        pairs = _idx(spec.upper + spec.lower)
        k = len(spec.upper)
        char, _, _ = corner_heights(ref_x, ref_y, spec.corners, pairs)
        drive, _, _ = corner_heights(dri_x, dri_y, spec.corners, pairs)
        models.append(
            PartModel(
                spec,
                strength.get(spec.part, 1.0),
                char[0, :k],
                char[0, k:],
                drive[0, :k],
                drive[0, k:],
                _thickness(ref_x, ref_y, spec)[0],
                _thickness(dri_x, dri_y, spec)[0],
            )
        )
    return models


def move_part(
    model: PartModel, x: np.ndarray, y: np.ndarray, dri_x: np.ndarray, dri_y: np.ndarray
) -> None:
    """Set the lid/lip heights of one part in the character's face-frame ``y`` (in place)."""
    spec, s = model.spec, model.strength
    k = len(spec.upper)
    pairs = _idx(spec.upper + spec.lower)
    drive, _, _ = corner_heights(dri_x, dri_y, spec.corners, pairs)
    d_up = np.clip(s * (drive[:, :k] - model.drive_upper), -MAX_CHANGE, MAX_CHANGE)
    d_low = np.clip(s * (drive[:, k:] - model.drive_lower), -MAX_CHANGE, MAX_CHANGE)

    g0 = model.rest_gap_drive
    gap = np.maximum(g0 + d_low - d_up, 0.0)  # [B, K]
    peak = np.maximum(np.maximum.accumulate(gap, axis=0), model.peak)
    model.peak = peak[-1].copy()
    rest = np.maximum(model.char_lower - model.char_upper, 0.0)
    top = rest + np.minimum(peak - g0, spec.cap)
    close_gain = top / np.maximum(np.maximum(peak, np.minimum(FLOOR, top)), 1e-12)
    opening = np.maximum(top - close_gain * (peak - gap), 0.0)
    closed = np.where(top > 0, 1.0 - opening / np.where(top > 0, top, 1.0), 0.0)
    centre_gain = 1.0 + (close_gain - 1.0) * closed
    centre = 0.5 * (model.char_upper + model.char_lower) + np.clip(
        centre_gain * 0.5 * (d_up + d_low), -MAX_CHANGE, MAX_CHANGE
    )
    heights = np.concatenate([centre - 0.5 * opening, centre + 0.5 * opening], axis=1)
    _, line, width = corner_heights(x, y, spec.corners, pairs)
    y[:, pairs] = line + heights * width

    if spec.outer_upper:
        change = np.clip(
            s * (_thickness(dri_x, dri_y, spec) - model.thick_drive), -MAX_CHANGE, MAX_CHANGE
        )
        thick = np.maximum(model.thick_char + change, np.minimum(model.thick_char, 0.0))
        src = _idx(tuple(i for pair in spec.upper_src + spec.lower_src for i in pair))
        inner, _, _ = corner_heights(x, y, spec.corners, src)
        inner = 0.5 * (inner[:, 0::2] + inner[:, 1::2])
        n_up = len(spec.outer_upper)
        outer = inner + thick * np.where(np.arange(thick.shape[1]) < n_up, -1.0, 1.0)
        idx = _idx(spec.outer_upper + spec.outer_lower)
        _, line, width = corner_heights(x, y, spec.corners, idx)
        y[:, idx] = line + outer * width


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
