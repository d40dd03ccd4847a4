"""Which points move with which run: the selected parts' runs laid out as flat "slots".

Runs are the thirteen :data:`~faceshot_core.schema.SUBPARTS`.  A slot is one (run, point) pair,
so the 13 runs become 76 slots and every step is vectorised over frames, runs and points at
once, with no loop over runs.  The tables are built once per selection of parts (cached).

Points shared by two runs (eye and lip corners 36, 39, 42, 45, 48, 54, 60, 64) are the
endpoints of both runs, whose frames coincide up to a half turn; each run proposes a position and
the output is their mean, which keeps the two lids (or lips) symmetric.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.schema import NUM_POINTS, PARTS, SUBPARTS, SUBPARTS_BY_NAME


def resolve_parts(parts: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate part names and return them in :data:`~faceshot_core.schema.PARTS` order.

    ``None`` means all five parts; a single string is one part name.  Unknown names raise
    :class:`~faceshot_core.errors.InvalidLandmarksError` listing the valid ones, because a typo
    would otherwise silently freeze that part.
    """
    if parts is None:
        return tuple(PARTS)
    names = [parts] if isinstance(parts, str) else list(parts)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise InvalidLandmarksError(
            f"unknown facial part(s) {', '.join(map(repr, unknown))}; "
            f"valid parts are: {', '.join(PARTS)}"
        )
    return tuple(p for p in PARTS if p in names)


@dataclass(frozen=True)
class Tables:
    """Index tables for the runs of the selected parts, laid out as flat "slots".

    A slot is one (run, point) pair; slots of a run are contiguous.  Runs are in
    :data:`SUBPARTS` order; ``run_starts`` index the first slot of each run.
    """

    e1: np.ndarray  # [R] first endpoint (defines the angle)
    e2: np.ndarray  # [R] last endpoint
    o1: np.ndarray  # [R] endpoints defining the origin (the nose bridge's for the lower nose)
    o2: np.ndarray  # [R]
    slot_point: np.ndarray  # [S] landmark index of each slot
    slot_run: np.ndarray  # [S] run index of each slot
    run_starts: np.ndarray  # [R]
    first_slot: np.ndarray  # [P] one slot for each point covered by the selected runs
    first_point: np.ndarray  # [P] its landmark index
    extra: tuple[tuple[np.ndarray, np.ndarray], ...]  # layers of (slots, points), no repeats
    shared_point: np.ndarray  # [Y] points covered more than once
    shared_count: np.ndarray  # [Y] how many runs cover each
    covers_all: bool  # first_point is exactly 0..67


@lru_cache(maxsize=64)
def tables(parts: tuple[str, ...]) -> Tables:
    """The slot tables of ``parts`` (as :func:`resolve_parts` returns them), cached."""
    runs = [s for s in SUBPARTS if s.part in parts]
    e1: list[int] = []
    e2: list[int] = []
    o1: list[int] = []
    o2: list[int] = []
    slot_point: list[int] = []
    slot_run: list[int] = []
    run_starts: list[int] = []
    for r, sub in enumerate(runs):
        origin = SUBPARTS_BY_NAME[sub.origin_from] if sub.origin_from else sub
        e1.append(sub.endpoints[0])
        e2.append(sub.endpoints[1])
        o1.append(origin.endpoints[0])
        o2.append(origin.endpoints[1])
        run_starts.append(len(slot_point))
        slot_point.extend(sub.indices)
        slot_run.extend([r] * len(sub.indices))
    # The k-th slot (k >= 1) of a point goes to layer k - 1, so that no layer repeats a point and
    # a fancy-indexed ``+=`` per layer is exact (the iBUG runs share points pairwise: one layer).
    seen: dict[int, int] = {}
    first_slot: list[int] = []
    first_point: list[int] = []
    layers: list[tuple[list[int], list[int]]] = []
    for s, i in sorted(enumerate(slot_point), key=lambda si: si[1]):  # by point index
        k = seen.get(i, 0)
        if k == 0:
            first_slot.append(s)
            first_point.append(i)
        else:
            if len(layers) < k:
                layers.append(([], []))
            layers[k - 1][0].append(s)
            layers[k - 1][1].append(i)
        seen[i] = k + 1
    shared = sorted(i for i, n in seen.items() if n > 1)

    def arr(values: list[int]) -> np.ndarray:
        return np.asarray(values, dtype=np.intp)

    return Tables(
        arr(e1),
        arr(e2),
        arr(o1),
        arr(o2),
        arr(slot_point),
        arr(slot_run),
        arr(run_starts),
        arr(first_slot),
        arr(first_point),
        tuple((arr(slots), arr(points)) for slots, points in layers),
        arr(shared),
        np.asarray([seen[i] for i in shared], dtype=np.float64),
        first_point == list(range(NUM_POINTS)),
    )
