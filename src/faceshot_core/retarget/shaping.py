"""Per-frame shaping after the run motion: part strengths, the opening model, the validity rules.

:func:`shape_block` takes the character's points after the run motion (offsets from the
reference face origin, before the head motion) and

1. scales each part's motion by its strength (``--motion eyes=1.2,mouth=0.8``),
2. sets lid and lip heights by the opening model (:mod:`.expression`) and the chin below the
   lower lip,
3. projects every frame onto the anatomical rules (:mod:`.constraints`),

all in each frame's face frame (the line through points 0 and 16), which the later head motion
(a rotation and a shift) does not change, so the final frames obey the rules too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.retarget.constraints import Margins, project
from faceshot_core.retarget.expression import (
    JawModel,
    OpeningModel,
    move_jaw,
    move_openings,
    prepare_jaw,
    prepare_openings,
)
from faceshot_core.retarget.frames import MIN_SIZE, unit
from faceshot_core.retarget.gain import OFFSET_BOUND
from faceshot_core.schema import JAW_ENDPOINTS, PARTS

#: Part strengths outside this range are refused (a typo such as 12 for 1.2).
MAX_STRENGTH = 5.0
#: Other names users reach for, mapped to the five part names.
PART_ALIASES = {"brows": "eyebrows", "jaw": "face_boundary", "face": "face_boundary", "eye": "eyes"}


def resolve_strength(strength: Mapping[str, float] | None) -> dict[str, float]:
    """Validate a ``{part: strength}`` mapping (aliases allowed); every part gets a value."""
    out = dict.fromkeys(PARTS, 1.0)
    for name, value in (strength or {}).items():
        part = PART_ALIASES.get(name, name)
        if part not in PARTS:
            raise InvalidLandmarksError(
                f"unknown part {name!r} in the motion strengths; "
                f"valid parts are: {', '.join(PARTS)}"
            )
        value = float(value)
        if not 0.0 <= value <= MAX_STRENGTH:
            raise InvalidLandmarksError(
                f"motion strength of {name!r} must be between 0 and {MAX_STRENGTH:g}, got {value:g}"
            )
        out[part] = value
    return out


def _to_face(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face-frame points of complex points ``[B, 68]`` (a new complex array ``f``: ``f.real``
    and ``f.imag`` are the face-frame ``x`` and ``y``), with the frame's origin and axis."""
    j0, j1 = JAW_ENDPOINTS
    origin = 0.5 * (z[:, j0] + z[:, j1])
    axis = unit(z[:, j1] - z[:, j0])
    f = z - origin[:, None]
    f *= np.conj(axis)[:, None]
    return f, origin, axis


@dataclass
class Shaping:
    """Everything the shaping needs, fixed by the reference and driving frame 0 (plus the widest
    driving openings seen so far, carried from block to block)."""

    point_strength: np.ndarray | None  # [68], None when every strength is 1
    openings: OpeningModel | None
    jaw: JawModel | None
    margins: Margins
    reach: float  # no offset from the reference face origin exceeds this (see shape_block)


def prepare_shaping(
    zr: np.ndarray, zd0: np.ndarray, parts: tuple[str, ...], strength: dict[str, float]
) -> Shaping:
    """The :class:`Shaping` of a (sanitized) reference ``zr`` and driving frame 0 (complex
    ``[68]``); ``parts`` are the parts with local motion, ``strength`` from
    :func:`resolve_strength`."""
    fr, _, _ = _to_face(zr[None])
    fd, _, _ = _to_face(zd0[None])
    rx, ry, dx, dy = fr.real, fr.imag, fd.real, fd.imag
    point_strength = None
    if any(v != 1.0 for v in strength.values()):
        point_strength = np.ones(len(zr))
        for part, indices in PARTS.items():
            point_strength[list(indices)] = strength[part]
    jaw = prepare_jaw(rx, ry, dx, dy, strength["mouth"]) if "mouth" in parts else None
    origin = 0.5 * (zr[JAW_ENDPOINTS[0]] + zr[JAW_ENDPOINTS[1]])
    reach = OFFSET_BOUND * max(float(np.abs(zr - origin).max()), MIN_SIZE)
    return Shaping(point_strength, prepare_openings(fr, fd, parts, strength), jaw,
                   Margins.of(rx[0], ry[0]), reach)  # fmt: skip


def shape_block(sh: Shaping, y: np.ndarray, rest: np.ndarray, zd: np.ndarray) -> np.ndarray:
    """Shape complex character offsets ``y`` ``[B, 68]`` given driving frames ``zd`` ``[B, 68]``.

    ``rest`` is the reference's offsets ``[68]`` (what strength 0 returns to).
    """
    if sh.point_strength is not None:
        y = rest + (y - rest) * sh.point_strength
    f, origin, axis = _to_face(y)
    fd, _, _ = _to_face(zd)
    x, fy, dx, dy = f.real, f.imag, fd.real, fd.imag  # views: edits to x, fy change f
    if sh.openings is not None:
        move_openings(sh.openings, f, fd)
    if sh.jaw is not None:
        move_jaw(sh.jaw, x, fy, dx, dy)
    project(x, fy, sh.margins)
    out = f
    out *= axis[:, None]
    out += origin[:, None]
    # The documented bound of the run motion holds after shaping too; only degenerate input
    # (a face collapsed to a point driven by a real one) comes near it.
    size = np.abs(out)
    np.multiply(out, sh.reach / np.maximum(size, sh.reach), out=out)
    return out
