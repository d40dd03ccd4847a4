"""Anatomical validity of 68-point faces, and the openings of their eyes and mouth.

A reposed landmark sequence is only useful if every frame is a face an animator can draw: the
lips do not pass through each other, a lid does not flip over the other lid, the chin stays
below the mouth.  This module states those rules once, as *links*, for the retargeting (which
guarantees them, :mod:`faceshot_core.retarget.constraints`), the quality benchmark and the tests
(which check them).

The face frame
--------------
Every rule is read in the face's own frame, so a tilted head is judged like an upright one: the
origin is the midpoint of the jaw endpoints 0 and 16, ``x`` points from 0 to 16 and ``y`` is ``x``
turned a quarter turn towards the chin (image "down" for an upright face).

The links
---------
A vertical link ``(a, b)`` says "point ``a`` is not below point ``b``": ``y[a] <= y[b]`` in the
face frame.  A horizontal link says ``x[a] < x[b]``.  Points are paired by *column* (a point
above the one below it in the 300-W layout), so each rule compares points that sit over each
other on every face.  Equality is allowed for lids and lips: a closed eye or mouth is valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceshot_core.schema import JAW_ENDPOINTS


@dataclass(frozen=True)
class Link:
    """One rule: ``a`` above (or left of) ``b``, in the face frame."""

    a: int
    b: int
    rule: str  # the family the rule belongs to, as reported
    horizontal: bool = False


def _vertical(rule: str, pairs: tuple[tuple[int, int], ...]) -> tuple[Link, ...]:
    return tuple(Link(a, b, rule) for a, b in pairs)


#: Upper-lid point over lower-lid point, both eyes.
EYELID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
#: Inner upper lip over inner lower lip.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
#: Outer upper lip over inner upper lip, and inner lower lip over outer lower lip.
LIP_LAYER_PAIRS = ((50, 61), (51, 62), (52, 63), (67, 58), (66, 57), (65, 56))
#: Lower lip over the chin.
JAW_PAIRS = ((58, 7), (57, 8), (56, 9))
#: Brow over upper lid.
BROW_PAIRS = ((19, 37), (20, 38), (23, 43), (24, 44))
#: Nostril line over the upper lip.
NOSE_PAIRS = ((32, 50), (33, 51), (34, 52))
#: Left-to-right order of the eye corners and of the mouth corners.
ORDER_PAIRS = ((36, 39), (39, 42), (42, 45), (48, 54), (60, 64))

LINKS: tuple[Link, ...] = (
    _vertical("eyelids inverted", EYELID_PAIRS)
    + _vertical("lips crossed", INNER_LIP_PAIRS)
    + _vertical("inner lip outside outer lip", LIP_LAYER_PAIRS)
    + _vertical("chin above mouth", JAW_PAIRS)
    + _vertical("brow below eye", BROW_PAIRS)
    + _vertical("mouth above nose", NOSE_PAIRS)
    + tuple(Link(a, b, "parts out of order", horizontal=True) for a, b in ORDER_PAIRS)
)
RULES: tuple[str, ...] = tuple(dict.fromkeys(link.rule for link in LINKS))

_A = np.array([link.a for link in LINKS])
_B = np.array([link.b for link in LINKS])
_HORIZONTAL = np.array([link.horizontal for link in LINKS])
_RULE_INDEX = np.array([RULES.index(link.rule) for link in LINKS])

#: Slack of every check, as a fraction of the face width (float32 rounding of the output).
CHECK_TOLERANCE = 1e-5


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of every point in its face frame (see the module docstring), float64.

    Works on ``[68, 2]`` and ``[..., 68, 2]``; a face whose endpoints 0 and 16 coincide gets the
    image axes.
    """
    p = np.asarray(points, dtype=np.float64)
    j0, j1 = JAW_ENDPOINTS
    origin = 0.5 * (p[..., j0, :] + p[..., j1, :])
    axis = p[..., j1, :] - p[..., j0, :]
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(length > 0, axis / np.where(length > 0, length, 1.0), [1.0, 0.0])
    d = p - origin[..., None, :]
    ax, ay = axis[..., None, 0], axis[..., None, 1]
    return d[..., 0] * ax + d[..., 1] * ay, d[..., 1] * ax - d[..., 0] * ay


def face_width(points: np.ndarray) -> np.ndarray:
    """Distance between the jaw endpoints 0 and 16 (the face frame's unit of length)."""
    p = np.asarray(points, dtype=np.float64)
    return np.linalg.norm(p[..., JAW_ENDPOINTS[1], :] - p[..., JAW_ENDPOINTS[0], :], axis=-1)


def link_slack(points: np.ndarray) -> np.ndarray:
    """Per link, how far inside its rule each face is (negative: broken), in face-frame pixels.

    ``[..., 68, 2]`` in, ``[..., len(LINKS)]`` out: ``y[b] - y[a]`` for vertical links,
    ``x[b] - x[a]`` for horizontal ones.
    """
    x, y = face_frame(points)
    coord = np.where(_HORIZONTAL, np.take(x, _B, axis=-1) - np.take(x, _A, axis=-1), 0.0)
    return np.where(_HORIZONTAL, coord, np.take(y, _B, axis=-1) - np.take(y, _A, axis=-1))


def violations(points: np.ndarray, tolerance: float = CHECK_TOLERANCE) -> np.ndarray:
    """Which rules each face breaks: bool ``[..., len(RULES)]`` (see :data:`RULES`).

    A rule is broken when one of its links is short by more than ``tolerance`` face widths; the
    horizontal rules (strict order) also when two points coincide.
    """
    slack = link_slack(points)
    width = face_width(points)[..., None]
    bad = np.where(_HORIZONTAL, slack <= tolerance * width, slack < -tolerance * width)
    out = np.zeros((*bad.shape[:-1], len(RULES)), dtype=bool)
    for k in range(len(RULES)):
        out[..., k] = bad[..., k == _RULE_INDEX].any(axis=-1)
    return out


def describe_violations(points: np.ndarray) -> list[str]:
    """One line per frame that breaks a rule: ``frame 12: lips crossed, chin above mouth``."""
    bad = violations(np.asarray(points, dtype=np.float64).reshape(-1, 68, 2))
    return [
        f"frame {m}: " + ", ".join(RULES[k] for k in np.flatnonzero(row))
        for m, row in enumerate(bad)
        if row.any()
    ]


@dataclass(frozen=True)
class Openings:
    """Openings of a face or sequence, in face-frame pixels and as fractions of the part width.

    ``mouth`` is the mean gap of the three inner-lip pairs; ``right_eye`` / ``left_eye`` the mean
    gap of the two lid pairs of the subject's right (36-41) and left (42-47) eye.  The ``*_ratio``
    fields divide by the distance between the part's corners (48-54, 36-39, 42-45), which makes
    a character's opening comparable with a human's.
    """

    mouth: np.ndarray
    right_eye: np.ndarray
    left_eye: np.ndarray
    mouth_ratio: np.ndarray
    right_eye_ratio: np.ndarray
    left_eye_ratio: np.ndarray


def _gap(y: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    return np.mean([y[..., b] - y[..., a] for a, b in pairs], axis=0)


def _width(p: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.maximum(np.linalg.norm(p[..., b, :] - p[..., a, :], axis=-1), 1e-9)


def openings(points: np.ndarray) -> Openings:
    """The :class:`Openings` of ``[..., 68, 2]`` points."""
    p = np.asarray(points, dtype=np.float64)
    _, y = face_frame(p)
    mouth = _gap(y, INNER_LIP_PAIRS)
    right = _gap(y, EYELID_PAIRS[:2])
    left = _gap(y, EYELID_PAIRS[2:])
    return Openings(
        mouth,
        right,
        left,
        mouth / _width(p, 48, 54),
        right / _width(p, 36, 39),
        left / _width(p, 42, 45),
    )
