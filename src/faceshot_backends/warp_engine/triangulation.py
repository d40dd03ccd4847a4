"""A triangulation that keeps given edges: Delaunay, then missing edges recovered by flips.

The warp mesh must keep the contours of eyes, lips, brows, jaw and nose bridge as edges, so an
eye or the inner mouth is a set of triangles of its own that can close to nothing or open from
nothing.  Delaunay alone does not guarantee that; flipping crossing edges (Sloan 1993) recovers
the missing ones, within a budget so that garbage input cannot stall the setup.
"""

from __future__ import annotations

import numpy as np

from faceshot_backends.warp_engine.geometry import cross


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles [T, 3] keeping every point as a vertex (joggled input if needed)."""
    from scipy.spatial import Delaunay  # a dependency of scikit-image, which faceshot requires

    tri = Delaunay(points)
    if len(tri.coplanar):  # duplicate points were dropped: joggle so that all are vertices
        tri = Delaunay(points, qhull_options="QJ Qbb")
    return np.asarray(tri.simplices, dtype=np.int64)


def _crosses(p: np.ndarray, a: int, b: int, u: int, v: int) -> bool:
    """Whether segments ``ab`` and ``uv`` (no shared endpoint) cross in their interiors."""
    if len({a, b, u, v}) < 4:
        return False
    d1, d2 = cross(p[a], p[b], p[u]), cross(p[a], p[b], p[v])
    d3, d4 = cross(p[u], p[v], p[a]), cross(p[u], p[v], p[b])
    return bool(d1 * d2 < 0 and d3 * d4 < 0)


def _has_edge(triangles: list[list[int]], a: int, b: int) -> bool:
    return any(a in t and b in t for t in triangles)


def _crossing_edges(
    triangles: list[list[int]], p: np.ndarray, a: int, b: int
) -> set[tuple[int, int]]:
    """Triangle edges ``(u, v)``, ``u < v``, crossing the segment ``ab`` (vectorised test)."""
    t = np.asarray(triangles)
    u, v = t.ravel(), t[:, [1, 2, 0]].ravel()
    pu, pv = p[u], p[v]
    hit = (cross(p[a], p[b], pu) * cross(p[a], p[b], pv) < 0) & (
        cross(pu, pv, p[a]) * cross(pu, pv, p[b]) < 0
    )
    hit &= (u != a) & (u != b) & (v != a) & (v != b)
    return {(min(x, y), max(x, y)) for x, y in zip(u[hit].tolist(), v[hit].tolist(), strict=True)}


def _flip_one(
    triangles: list[list[int]], p: np.ndarray, a: int, b: int, locked: set[frozenset[int]]
) -> bool:
    """Flip one edge crossing ``ab`` whose quadrilateral is convex; False if none can be.

    An edge already recovered (``locked``) is never flipped: a contour crossing another one
    (only in a very strange reference) is given up instead of undoing it.
    """
    crossing = _crossing_edges(triangles, p, a, b)
    if any(frozenset(e) in locked for e in crossing):
        return False
    for u, v in crossing:
        owners = [k for k, t in enumerate(triangles) if u in t and v in t]
        if len(owners) != 2:
            continue
        k1, k2 = owners
        q1 = next(x for x in triangles[k1] if x not in (u, v))
        q2 = next(x for x in triangles[k2] if x not in (u, v))
        if _crosses(p, q1, q2, u, v):  # convex quadrilateral: the other diagonal is valid
            triangles[k1], triangles[k2] = [q1, q2, u], [q1, q2, v]
            return True
    return False


def enforce_edges(
    triangles: np.ndarray, points: np.ndarray, edges: list[tuple[int, int]]
) -> np.ndarray:
    """Recover contour edges missing from a Delaunay triangulation by edge flips (Sloan 1993).

    Flipping a crossing edge inside a convex quadrilateral keeps a valid triangulation, and
    repeating it makes the wanted edge appear (a face's contours need a handful of flips).  An
    edge that cannot be recovered (collinear points, contours that cross in a strange
    reference) is left out, and the flip budget bounds the setup time for garbage input: the
    warp stays valid, only less tidy along that contour.
    """
    tris = [list(map(int, t)) for t in triangles]
    locked: set[frozenset[int]] = set()
    budget = 4 * len(edges)
    for a, b in edges:
        while budget > 0 and not _has_edge(tris, a, b):
            budget -= 1
            if not _flip_one(tris, points, a, b, locked):
                break
        if _has_edge(tris, a, b):
            locked.add(frozenset((a, b)))
    return np.asarray(tris, dtype=np.int64)
