"""The mesh's core vertices: the 68 landmarks, contour midpoints and the lid margins.

Six points outline a round eye as a hexagon and eight an angular open mouth; a Catmull-Rom
midpoint on each contour edge makes them smooth curves.  The midpoints are a fixed linear map
of the landmarks, so they move with the landmarks at the cost of one small matrix product per
frame.  A lid margin line above each upper lid moves with the lid, so the lashes keep their
thickness as the eye closes (:data:`NUM_CORE` vertices in all).  :data:`CONTOURS` gives each
contour's closed loop of vertex indices, which the mesh keeps as edges and the mouth and lid
painters draw; :data:`LID_MARGINS` the margin lines, kept as edges too.
"""

from __future__ import annotations

import numpy as np

from faceshot_core.schema import INNER_LIPS, LEFT_EYE, NUM_POINTS, RIGHT_EYE

#: Upper and lower lid landmarks that meet when an eye closes.
LID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))  # upper lid point, lower lid point
#: Inner upper and lower lip landmarks that meet when the mouth closes.
LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # inner upper lip, inner lower lip


def _run_midpoints(run: tuple[int, ...]) -> list[np.ndarray]:
    """Catmull-Rom midpoint weights (rows over the 68 landmarks) of each segment of an open run.

    A midpoint is ``(-p[j-1] + 9 p[j] + 9 p[j+1] - p[j+2]) / 16``; past an end of the run the
    missing neighbour is extrapolated linearly (``2 p[0] - p[1]``), which keeps each lid or lip
    independent of the other one.
    """
    rows = []
    n = len(run)
    for j in range(n - 1):
        row = np.zeros(NUM_POINTS)
        row[run[j]] += 9 / 16
        row[run[j + 1]] += 9 / 16
        for k, end, inner in ((j - 1, 0, 1), (j + 2, n - 1, n - 2)):
            if 0 <= k < n:
                row[run[k]] -= 1 / 16
            else:  # extrapolated neighbour 2 p[end] - p[inner]
                row[run[end]] -= 2 / 16
                row[run[inner]] += 1 / 16
        rows.append(row)
    return rows


def _contour_midpoints() -> tuple[np.ndarray, dict[str, tuple[int, ...]]]:
    """Midpoints of the eye and inner-lip contours, as a linear map of the landmarks.

    Six points outline a round eye as a hexagon, leaving slivers of eye outside the polygon
    that a closing lid would not cover, and eight points make an angular open mouth.  A
    Catmull-Rom midpoint on each contour edge follows the curve through its neighbours, is
    linear in the landmarks (so it moves with them at the cost of one small matrix product per
    frame) and, computed per lid or lip (corner to corner), collapses onto the lid line when a
    lid closes and leaves the lower lid or lip alone when the upper one moves.  Returns the
    ``[K, 68]`` matrix and, per contour, its closed loop of vertex indices starting at the
    image-left corner and running along the upper lid or lip first.
    """
    rows: list[np.ndarray] = []
    loops: dict[str, tuple[int, ...]] = {}
    for name, run in (("right_eye", RIGHT_EYE), ("left_eye", LEFT_EYE), ("inner_lips", INNER_LIPS)):
        half = len(run) // 2  # the far corner: 39, 45 or 64
        upper, lower = run[: half + 1], (*run[half:], run[0])
        loop: list[int] = []
        for part in (upper, lower):
            for j, row in enumerate(_run_midpoints(part)):
                loop += [part[j], NUM_POINTS + len(rows)]
                rows.append(row)
        loops[name] = tuple(loop)
    return np.array(rows), loops


_MIDPOINTS, CONTOURS = _contour_midpoints()

#: Thickness of the lid margin band above each upper lid, in eye widths (at the lid's middle).
LID_BAND = 0.12
_BAND_TAPER = np.array([0.6, 0.85, 1.0, 0.85, 0.6])  # thinner towards the eye corners


def _lid_margins() -> tuple[np.ndarray, list[tuple[int, int]], dict[str, tuple[int, ...]]]:
    """The lid margin vertices: one above each upper-lid vertex between the eye corners.

    A closing eye is the upper lid coming down; with only the lid line as vertices, the
    triangles from the lid up to the brow stretch evenly, lashes and lid margin included, and
    the dark lash line smears into a broad band.  A second line ``LID_BAND`` eye widths above
    the lid (perpendicular to the corner line, so it turns with the eye) moves with the lid:
    the band between them - margin, lashes - keeps its thickness, and only the lid skin above it
    stretches down over the eye.  Returns the base rows (the lid vertex under each margin
    vertex, over the 68 landmarks), the eye corners ``(a, b)`` of each, and the margin line of
    each eye (corner, margin vertices, corner) as vertex indices.
    """
    rows: list[np.ndarray] = []
    corners: list[tuple[int, int]] = []
    lines: dict[str, tuple[int, ...]] = {}
    first = NUM_POINTS + len(_MIDPOINTS)
    for name, (a, b) in (("right_eye", (36, 39)), ("left_eye", (42, 45))):
        line = [a]
        for v in CONTOURS[name][1:6]:  # the upper lid between the corners
            row = np.zeros(NUM_POINTS)
            if v < NUM_POINTS:
                row[v] = 1.0
            else:
                row = _MIDPOINTS[v - NUM_POINTS].copy()
            line.append(first + len(rows))
            rows.append(row)
            corners.append((a, b))
        lines[name] = (*line, b)
    return np.array(rows), corners, lines


_MARGIN_ROWS, _MARGIN_CORNERS, LID_MARGINS = _lid_margins()
_MARGIN_A = [a for a, _ in _MARGIN_CORNERS]
_MARGIN_B = [b for _, b in _MARGIN_CORNERS]
_MARGIN_K = LID_BAND * np.tile(_BAND_TAPER, 2)[:, None]
#: Vertices that follow the landmarks directly: the 68 landmarks, the contour midpoints and the
#: lid margins.
NUM_CORE = NUM_POINTS + len(_MIDPOINTS) + len(_MARGIN_ROWS)


def core_vertices(points: np.ndarray) -> np.ndarray:
    """The core vertices ``[NUM_CORE, 2]``: the landmarks, contour midpoints, lid margins."""
    across = points[_MARGIN_B] - points[_MARGIN_A]  # along each eye, corner to corner
    up = np.stack([across[:, 1], -across[:, 0]], axis=1)  # a quarter turn: up for an upright eye
    margins = _MARGIN_ROWS @ points + _MARGIN_K * up
    return np.vstack([points, _MIDPOINTS @ points, margins])
