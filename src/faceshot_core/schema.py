"""The iBUG 300-W 68-point landmark schema.

Every landmark array in faceshot follows this order (the one dlib, FAN and MOFA-Video use):
points are pixel ``(x, y)`` float32, 0-based, and "right"/"left" are the *subject's* sides (the
subject's right eye, 36-41, appears on the image's left).

Two granularities of grouping are defined here:

* :data:`PARTS` - the paper's five facial parts (face boundary, brows, nose, eyes, mouth), used by
  the appearance gallery and for reporting.
* :data:`SUBPARTS` - the thirteen finer runs the coordinate-based retargeting moves one by one.
  Each run is an ordered index list whose first and last entries are the endpoints that define
  its local coordinate system (paper Fig. 12); closed contours (lower lids, lower lips) repeat the
  starting corner so that both endpoints lie on the corners.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

NUM_POINTS = 68

# The paper's five parts, as contiguous index ranges.
FACE_BOUNDARY = tuple(range(0, 17))
BROWS = tuple(range(17, 27))
NOSE = tuple(range(27, 36))
EYES = tuple(range(36, 48))
MOUTH = tuple(range(48, 68))

PARTS: dict[str, tuple[int, ...]] = {
    "face_boundary": FACE_BOUNDARY,
    "eyebrows": BROWS,
    "nose": NOSE,
    "eyes": EYES,
    "mouth": MOUTH,
}

# Named finer groups that several modules need.
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
LOWER_NOSE = tuple(range(31, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))

# Corners used for the inter-ocular distance (the 300-W NME normaliser).
RIGHT_EYE_OUTER_CORNER = 36
LEFT_EYE_OUTER_CORNER = 45
JAW_ENDPOINTS = (0, 16)


@dataclass(frozen=True)
class SubPart:
    """One run of points that the retargeting moves in its own coordinate frame.

    ``indices`` is ordered; ``indices[0]`` and ``indices[-1]`` are the endpoints whose midpoint is
    the run's origin and whose direction is its x axis.  ``origin_from`` names another sub-part
    whose origin this one shares (the lower nose hangs from the nose bridge: its own endpoints,
    the nostril wings, move with the mouth and would drag the nose with it).
    """

    name: str
    part: str
    indices: tuple[int, ...]
    origin_from: str | None = None

    @property
    def endpoints(self) -> tuple[int, int]:
        return self.indices[0], self.indices[-1]


SUBPARTS: tuple[SubPart, ...] = (
    SubPart("jaw", "face_boundary", FACE_BOUNDARY),
    SubPart("right_brow", "eyebrows", RIGHT_BROW),
    SubPart("left_brow", "eyebrows", LEFT_BROW),
    SubPart("nose_bridge", "nose", NOSE_BRIDGE),
    SubPart("lower_nose", "nose", LOWER_NOSE, origin_from="nose_bridge"),
    SubPart("right_eye_upper", "eyes", (36, 37, 38, 39)),
    SubPart("right_eye_lower", "eyes", (39, 40, 41, 36)),
    SubPart("left_eye_upper", "eyes", (42, 43, 44, 45)),
    SubPart("left_eye_lower", "eyes", (45, 46, 47, 42)),
    SubPart("outer_upper_lip", "mouth", (48, 49, 50, 51, 52, 53, 54)),
    SubPart("outer_lower_lip", "mouth", (54, 55, 56, 57, 58, 59, 48)),
    SubPart("inner_upper_lip", "mouth", (60, 61, 62, 63, 64)),
    SubPart("inner_lower_lip", "mouth", (64, 65, 66, 67, 60)),
)

SUBPARTS_BY_NAME: dict[str, SubPart] = {s.name: s for s in SUBPARTS}

# Line segments for drawing: consecutive points within each run (closed contours closed).
_OPEN_RUNS = (FACE_BOUNDARY, RIGHT_BROW, LEFT_BROW, NOSE_BRIDGE, LOWER_NOSE)
_CLOSED_RUNS = (RIGHT_EYE, LEFT_EYE, OUTER_LIPS, INNER_LIPS)


def _segments() -> tuple[tuple[int, int], ...]:
    edges: list[tuple[int, int]] = []
    for run in _OPEN_RUNS:
        edges.extend(itertools.pairwise(run))
    for run in _CLOSED_RUNS:
        edges.extend(zip(run, run[1:] + run[:1], strict=True))
    edges.append((30, 33))  # nose tip to the middle of the nostril line
    return tuple(edges)


CONNECTIONS: tuple[tuple[int, int], ...] = _segments()


def part_of(index: int) -> str:
    """Name of the five-part group that landmark ``index`` belongs to."""
    for name, indices in PARTS.items():
        if index in indices:
            return name
    raise IndexError(f"landmark index {index} is outside 0..{NUM_POINTS - 1}")


def _check_tables() -> None:
    covered = sorted(i for idx in PARTS.values() for i in idx)
    assert covered == list(range(NUM_POINTS)), "PARTS must partition 0..67"
    sub_covered = {i for s in SUBPARTS for i in s.indices}
    assert sub_covered == set(range(NUM_POINTS)), "SUBPARTS must cover 0..67"


_check_tables()
