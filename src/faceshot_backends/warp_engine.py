"""CPU landmark-driven warp engine: a piecewise-affine backward warp of one reference image.

The built-in ``warp`` backend animates a character by moving the pixels of its reference image
so that the reference's 68 landmarks land on each frame's reposed landmarks.  Everything
expensive is decided once per reference (:class:`LandmarkWarper`), so that a frame costs a few
milliseconds:

* **Mesh.**  The 68 landmarks alone would leave everything outside their hull (forehead, hair,
  neck, background) unwarped, and a Delaunay triangulation redone per frame would change
  topology as points move and make the picture jump.  The mesh therefore adds anchors and is
  triangulated once, on the reference:

  - *contour midpoints* on the eye and inner-lip outlines (Catmull-Rom, linear in the
    landmarks), so a round eye or an open mouth is a smooth curve rather than a hexagon;
  - *head anchors* above the brows (forehead, crown), beside the eyes (temples) and above the
    eye corners (posts), placed from the face's own geometry.  They follow the head's
    similarity motion (fitted on the points an expression barely moves: jaw ends, nose, eye
    corners), so the skull and hair move with the head instead of being smeared between the
    brows and a fixed background, a brow raise stretches the skin below the forehead rather
    than the whole forehead, and a closing lid slides down past the corner posts instead of
    folding the triangles beside the eye;
  - a *ring* of fixed anchors round the face at a margin that absorbs the head's motion, so the
    neck and background further out stay still;
  - fixed *border* anchors (corners and edge points), so the mesh covers the whole image and its
    edges never move.

  The triangulation keeps the contours of the eyes, lips, brows, jaw and nose bridge, and the
  corner-to-post fences, as edges (missing Delaunay edges are recovered by edge flips), so an
  eye or the inner mouth is a set of triangles of its own that can close to nothing or open
  from nothing.  Closed eyes and a closed mouth in the reference (coincident lid or lip points)
  are pulled a hair apart for the triangulation only, so that the triangles that will open
  later exist.

* **Warp.**  Per frame, only triangles with a moved vertex matter; their bounding box is the only
  region recomputed.  Each destination triangle gets the 2x3 affine that maps it back onto its
  reference triangle; a per-pixel triangle-id map is rasterised with ``cv2.fillConvexPoly``, the
  affine coefficients are gathered with ``cv2.LUT`` and turned into ``map_x``/``map_y``, and one
  ``cv2.remap`` (bilinear, edges replicated) samples the reference.  Triangles that fold over
  (their orientation flips) are drawn *under* the others, so a fold shows the neighbouring
  texture rather than a mirrored copy; triangles squashed to nothing are skipped.

* **Mouth and lids.**  A mouth opened wider than in the reference needs pixels the reference
  does not have: a dark cavity (dark red, darker at the back) is painted into the destination
  inner-lip polygon with feathered edges, a soft teeth band under the upper lip when a closed
  reference opens wide, and a reference that already shows its mouth interior keeps it, moving
  with the upper lip, so the newly opened gap appears below it.  A closing eye is the warp
  squashing the eye triangles under the stretched lid; a light shadow is drawn along the closed
  lid line.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike

from faceshot_core.schema import (
    FACE_BOUNDARY,
    INNER_LIPS,
    LEFT_BROW,
    LEFT_EYE,
    NOSE_BRIDGE,
    NUM_POINTS,
    OUTER_LIPS,
    RIGHT_BROW,
    RIGHT_EYE,
)

__all__ = [
    "CONTOURS",
    "NUM_CORE",
    "STABLE_POINTS",
    "LandmarkWarper",
    "WarpMesh",
    "build_mesh",
    "similarity_transform",
]

#: Landmarks an expression barely moves: the head's similarity motion is fitted on these.
STABLE_POINTS = (0, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
_LID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))  # upper lid point, lower lid point
_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # inner upper lip, inner lower lip
_OPEN_RUNS = (FACE_BOUNDARY, RIGHT_BROW, LEFT_BROW, NOSE_BRIDGE)

_MOVE_EPS = 1e-3  # px: a vertex that moved less than this is treated as fixed
_MIN_AREA = 1e-3  # px^2 (twice the area): smaller destination triangles cover no pixel
_SHIFT = 4  # sub-pixel bits for cv2 rasterisation
_FAR = 4.0  # points are clamped to this many image sizes beyond the border


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst``: [2, 3].

    Solved in closed form with complex numbers (the 2-D Umeyama solution without reflection).
    Used for the head motion: a similarity cannot shear, so a one-sided expression (an eye
    closing) cannot tilt the forehead.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    zs = (src[:, 0] - mu_s[0]) + 1j * (src[:, 1] - mu_s[1])
    zd = (dst[:, 0] - mu_d[0]) + 1j * (dst[:, 1] - mu_d[1])
    var = float(np.vdot(zs, zs).real)
    k = complex(np.vdot(zs, zd) / var) if var > 1e-12 else 1.0 + 0.0j
    rot = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of ``(a - o) x (b - o)``, broadcast over leading axes (twice the signed area)."""
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def _signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    p = vertices[triangles]
    return _cross(p[:, 0], p[:, 1], p[:, 2])


def _smoothstep(x: float, lo: float, hi: float) -> float:
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(right, down, half_width)``: the face's axes from the jaw ends (0 -> 16) and its scale."""
    v = points[16] - points[0]
    length = float(np.hypot(*v))
    if length < 1e-6:  # degenerate jaw: fall back to image axes and the landmarks' extent
        return np.array([1.0, 0.0]), np.array([0.0, 1.0]), max(float(np.ptp(points)) / 2, 1.0)
    right = v / length
    return right, np.array([-right[1], right[0]]), length / 2


# --------------------------------------------------------------------------------------------
# Mesh: contour midpoints, anchors and a fixed, contour-respecting triangulation
# --------------------------------------------------------------------------------------------


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
#: Vertices that follow the landmarks directly: the 68 landmarks and the contour midpoints.
NUM_CORE = NUM_POINTS + len(_MIDPOINTS)


def _core_vertices(points: np.ndarray) -> np.ndarray:
    return np.vstack([points, _MIDPOINTS @ points])


@dataclass(frozen=True)
class WarpMesh:
    """The reference's warp mesh.

    ``vertices`` are the 68 landmarks and the contour midpoints (:data:`NUM_CORE` in all), then
    ``num_head`` head anchors (they follow the head's similarity motion), then fixed anchors
    (ring and image border).  ``triangles`` index ``vertices``; ``orientation`` is each
    triangle's sign in the triangulation layout (+1, or 0 for a sliver), against which a
    destination triangle's sign tells whether it folded over.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    num_head: int
    orientation: np.ndarray

    @property
    def num_fixed(self) -> int:
        return len(self.vertices) - NUM_CORE - self.num_head


def _inside_fraction(base: np.ndarray, target: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Largest ``t`` in [0, 1] keeping ``base + t (target - base)`` inside the box [lo, hi]."""
    t = 1.0
    d = target - base
    for axis in range(2):
        if d[axis] > 0:
            t = min(t, (hi[axis] - base[axis]) / d[axis])
        elif d[axis] < 0:
            t = min(t, (lo[axis] - base[axis]) / d[axis])
    return max(t, 0.0)


def _eye_posts(core: np.ndarray, up: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Anchors above each eye corner, as ``(base, target, corner)``.

    A closing upper lid often ends below the line of the eye corners (the lower lid sags
    between them), so the lid vertices next to a corner sweep through the corner's level.  A
    triangle joining such a vertex to a point level with the corner (the nose bridge, the end
    of the brow) folds over on the way.  A post straight above each corner, higher than the lid
    beside it but below the brow, and joined to the corner by a constrained edge, makes a fence
    the lid slides down along without folding.
    """
    posts = []
    for name, brow in (("right_eye", RIGHT_BROW), ("left_eye", LEFT_BROW)):
        loop = CONTOURS[name]
        c0, c1 = loop[0], loop[6]
        width = float(np.hypot(*(core[c1] - core[c0])))
        for c, lid in ((c0, loop[1:4]), (c1, loop[3:6])):
            lid_height = float(np.max((core[list(lid)] - core[c]) @ up))
            to_brow = float(np.min(np.hypot(*(core[list(brow)] - core[c]).T)))
            height = min(max(0.3 * width, lid_height + 0.08 * width), 0.85 * to_brow)
            posts.append((core[c], core[c] + up * height, c))
    return posts


def _head_anchors(
    points: np.ndarray, core: np.ndarray, size: tuple[int, int], height: float
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Forehead, crown, temple and eye-corner anchors, inside the image (dropped if they can't be).

    They are extrapolated from the brows along the face's up direction, in units of half the jaw
    width, so they sit on the forehead and skull of any face proportion (a cat's brows are far
    apart, a child's forehead is high).  An anchor outside the image would stretch the band
    between it and the fixed border, so it is moved back towards its base point, and dropped if
    it would end up too close to its base, or to another vertex, to matter.  Returns the anchors
    and the fences ``(landmark, anchor number)`` the triangulation must keep as edges.
    """
    right, down, s = _face_frame(points)
    up = -down
    brow_mid = (points[21] + points[22]) / 2
    pairs = [(points[i], points[i] + up * height * s, -1) for i in (17, 19, 21, 22, 24, 26)]
    pairs += [
        (points[17], points[17] + up * 2.1 * height * s - right * 0.25 * s, -1),  # crown
        (brow_mid, brow_mid + up * 2.4 * height * s, -1),
        (points[26], points[26] + up * 2.1 * height * s + right * 0.25 * s, -1),
        (points[0], points[0] + up * 0.35 * s - right * 0.3 * s, -1),  # temples
        (points[16], points[16] + up * 0.35 * s + right * 0.3 * s, -1),
    ]
    pairs += _eye_posts(core, up)
    inset = max(6.0, 0.03 * min(size))
    lo, hi = np.array([inset, inset]), np.array([size[0] - 1 - inset, size[1] - 1 - inset])
    kept: list[np.ndarray] = []
    fences: list[tuple[int, int]] = []
    for base, target, fence in pairs:
        t = _inside_fraction(base, target, lo, hi)
        if t < 0.35:
            continue
        p = base + t * (target - base)
        near = np.vstack([core, *kept]) if kept else core
        if np.min(np.hypot(*(near - p).T)) >= 0.03 * s:
            if fence >= 0:
                fences.append((fence, len(kept)))
            kept.append(p)
    return np.array(kept, dtype=np.float64).reshape(-1, 2), fences


def _ring_and_border(
    moving: np.ndarray, size: tuple[int, int], margin: float, count: int = 20
) -> np.ndarray:
    """Fixed anchors: a ring round the moving vertices at ``margin`` px, and the image border.

    Ring points outside the image, or nearer than half the margin to a moving vertex, are left
    out (the border takes over there).  Border edge points within 2 px of a vertex are left out
    too (they would make slivers); the four corners always stay, so the mesh covers the image.
    """
    w, h = size
    lo, hi = moving.min(axis=0), moving.max(axis=0)
    centre, axes = (lo + hi) / 2, (hi - lo) / 2 + margin
    ang = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    ring = centre + axes * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    inside = (ring[:, 0] > 2) & (ring[:, 0] < w - 3) & (ring[:, 1] > 2) & (ring[:, 1] < h - 3)
    dist = np.linalg.norm(ring[:, None] - moving[None], axis=2).min(axis=1)
    ring = ring[inside & (dist >= margin / 2)]
    xs, ys = np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=np.float64)
    edges = np.array(
        [[x, y] for x in xs[1:-1] for y in (0, h - 1)]
        + [[x, y] for y in ys[1:-1] for x in (0, w - 1)],
        dtype=np.float64,
    )
    taken = np.vstack([moving, ring])
    edge_dist = np.linalg.norm(edges[:, None] - taken[None], axis=2).min(axis=1)
    return np.vstack([ring, corners, edges[edge_dist > 2.0]])


def _separate_closed_pairs(points: np.ndarray) -> np.ndarray:
    """Landmarks for the triangulation layout: closed lids and lips pulled a little apart.

    With coincident upper and lower points (a closed mouth or eye) Delaunay would drop one of
    them or triangulate across the opening, and the mouth could never open in the mesh.  Only
    the topology is taken from this layout; the warp uses the true reference positions.
    """
    out = points.copy()
    for pairs, a, b in ((_LID_PAIRS[:2], 36, 39), (_LID_PAIRS[2:], 42, 45), (_LIP_PAIRS, 60, 64)):
        v = out[b] - out[a]
        width = float(np.hypot(*v))
        if width < 1e-6:
            continue
        n = np.array([-v[1], v[0]]) / width  # points from upper to lower for an upright face
        gap = max(0.08 * width, 1.0)
        for upper, lower in pairs:
            g = float((out[lower] - out[upper]) @ n)
            if g < gap:
                out[upper] -= n * (gap - g) / 2
                out[lower] += n * (gap - g) / 2
    return out


def _delaunay(points: np.ndarray) -> np.ndarray:
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
    d1, d2 = _cross(p[a], p[b], p[u]), _cross(p[a], p[b], p[v])
    d3, d4 = _cross(p[u], p[v], p[a]), _cross(p[u], p[v], p[b])
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
    hit = (_cross(p[a], p[b], pu) * _cross(p[a], p[b], pv) < 0) & (
        _cross(pu, pv, p[a]) * _cross(pu, pv, p[b]) < 0
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


def _enforce_edges(
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


def _contour_edges() -> list[tuple[int, int]]:
    """Edges the triangulation must keep: jaw, brows, nose bridge, lips and eye outlines."""
    edges = [(r[i], r[i + 1]) for r in _OPEN_RUNS for i in range(len(r) - 1)]
    loops = [OUTER_LIPS, *CONTOURS.values()]
    edges += [(r[i], r[(i + 1) % len(r)]) for r in loops for i in range(len(r))]
    return edges


def build_mesh(
    points: np.ndarray,
    image_size: tuple[int, int],
    *,
    forehead_height: float = 0.5,
    ring_margin: float = 0.8,
) -> WarpMesh:
    """The warp mesh of a reference: landmarks, head anchors, fixed anchors and triangles.

    ``image_size`` is ``(width, height)``.  ``forehead_height`` places the forehead anchors
    above the brows and ``ring_margin`` the fixed ring beyond the face, both in units of half
    the jaw width (0 -> 16).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(NUM_POINTS, 2)
    _, _, s = _face_frame(pts)
    core = _core_vertices(pts)
    head, fences = _head_anchors(pts, core, image_size, forehead_height)
    moving = np.vstack([core, head])
    fixed = _ring_and_border(moving, image_size, ring_margin * s)
    vertices = np.vstack([moving, fixed])
    layout = np.vstack([_core_vertices(_separate_closed_pairs(pts)), head, fixed])
    edges = _contour_edges() + [(c, NUM_CORE + k) for c, k in fences]
    triangles = _enforce_edges(_delaunay(layout), layout, edges)
    areas = _signed_areas(layout, triangles)
    flip = areas < 0
    triangles[flip] = triangles[flip][:, [0, 2, 1]]  # counter-clockwise in the layout
    orientation = np.where(np.abs(areas) > 1e-9, 1.0, 0.0)
    return WarpMesh(vertices, triangles.astype(np.int32), len(head), orientation)


# --------------------------------------------------------------------------------------------
# Mouth interior and eyelids
# --------------------------------------------------------------------------------------------

_CAVITY_EDGE = np.array([112.0, 44.0, 40.0], dtype=np.float32)  # RGB near the lips
_CAVITY_DEEP = np.array([26.0, 8.0, 10.0], dtype=np.float32)  # RGB at the back of the mouth
_TEETH = np.array([232.0, 226.0, 212.0], dtype=np.float32)
_LID_SHADOW = 0.3  # darkening along a fully closed lid line
_INNER_LOOP = list(CONTOURS["inner_lips"])
_UPPER_INNER = _INNER_LOOP[:9]  # 60 ... 64 with the midpoints between
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Mouth:
    """Inner-mouth axes: ``right`` along the corners 60 -> 64, ``down`` towards the lower lip."""

    centre: np.ndarray
    right: np.ndarray
    down: np.ndarray
    width: float
    gap: float

    @classmethod
    def of(cls, points: np.ndarray) -> _Mouth:
        v = points[64] - points[60]
        width = float(np.hypot(*v))
        right = v / width if width > 1e-6 else np.array([1.0, 0.0])
        down = np.array([-right[1], right[0]])
        upper = points[[u for u, _ in _LIP_PAIRS]]
        lower = points[[lo for _, lo in _LIP_PAIRS]]
        gap = max(float(np.mean((lower - upper) @ down)), 0.0)
        return cls(points[list(INNER_LIPS)].mean(axis=0), right, down, max(width, 1e-6), gap)

    @property
    def opening(self) -> float:
        """Gap between the inner lips relative to the mouth width (scale free)."""
        return self.gap / self.width


def _patch_box(points: np.ndarray, pad: float, size: tuple[int, int]) -> Box | None:
    """Integer box ``(x0, y0, x1, y1)`` round ``points`` padded and clipped, or None if empty."""
    lo = np.floor(points.min(axis=0) - pad)
    hi = np.ceil(points.max(axis=0) + pad) + 1
    x0, y0 = int(max(lo[0], 0)), int(max(lo[1], 0))
    x1, y1 = int(min(hi[0], size[0])), int(min(hi[1], size[1]))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _poly_mask(polygon: np.ndarray, box: Box, sigma: float, *, closed: bool = True) -> np.ndarray:
    """Feathered float32 mask (0..1) of a polygon (or a polyline when not ``closed``) in ``box``."""
    x0, y0, x1, y1 = box
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    fixed = np.rint((polygon - (x0, y0)) * (1 << _SHIFT)).astype(np.int32)
    if closed:
        cv2.fillPoly(canvas, [fixed], 255, cv2.LINE_AA, _SHIFT)
    else:
        cv2.polylines(canvas, [fixed], False, 255, max(1, round(sigma)), cv2.LINE_AA, _SHIFT)
    mask = canvas.astype(np.float32) * (1.0 / 255.0)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


class _MouthInterior:
    """Paints what a mouth shows when it opens wider than in the reference.

    The cavity appears gradually as the opening exceeds the reference's (``opening`` is the gap
    over the mouth width, so a 10 % wider opening always looks the same).  A reference whose
    inner lips are apart shows its own interior (teeth, tongue): that layer is kept, attached
    to the upper lip like upper teeth are to the skull, and the cavity fills the gap below it.
    A reference with a closed mouth has no interior to show, so a synthetic, soft teeth band
    under the upper lip appears when the mouth opens wide.
    """

    def __init__(self, image: np.ndarray, vertices: np.ndarray, *, teeth: bool) -> None:
        self._size = (image.shape[1], image.shape[0])
        self._ref = _Mouth.of(vertices)
        self._own = _smoothstep(self._ref.opening, 0.04, 0.1)  # how much interior it shows
        self._teeth = teeth
        self._upper_ref = vertices[_UPPER_INNER]
        poly = vertices[_INNER_LOOP]
        sigma = max(0.6, 0.02 * self._ref.width)
        box = _patch_box(poly, 3 * sigma + 2, self._size)
        self._layer: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self._own > 0 and box is not None:
            x0, y0, x1, y1 = box
            patch = image[y0:y1, x0:x1].astype(np.float32)
            self._layer = (patch, _poly_mask(poly, box, sigma), np.array([x0, y0], np.float64))

    def apply(self, out: np.ndarray, vertices: np.ndarray) -> None:
        """Paint the interior for destination ``vertices`` into ``out`` (uint8 RGB, in place)."""
        dst = _Mouth.of(vertices)
        cavity = _smoothstep(dst.opening - self._ref.opening, 0.0, 0.08)
        if cavity < 1.0 / 255.0:
            return
        poly = vertices[_INNER_LOOP]
        sigma = max(0.6, 0.03 * dst.width)
        box = _patch_box(poly, 3 * sigma + 2, self._size)
        if box is None:
            return
        x0, y0, x1, y1 = box
        mask = _poly_mask(poly, box, sigma)
        patch = out[y0:y1, x0:x1].astype(np.float32)
        patch += (self._cavity_colour(dst, box) - patch) * (cavity * mask)[..., None]
        teeth = (1.0 - self._own) * _smoothstep(dst.opening, 0.15, 0.35)
        if self._teeth and teeth > 0:
            self._paint_teeth(patch, vertices[_UPPER_INNER], dst, box, mask * teeth)
        if self._layer is not None:
            self._paint_own(patch, vertices[_UPPER_INNER], box, mask * (cavity * self._own))
        out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _grid(mouth: _Mouth, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """Pixel offsets from the mouth centre along (``right``, ``down``), normalised."""
        x0, y0, x1, y1 = box
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xs - mouth.centre[0], ys - mouth.centre[1]
        du = (dx * mouth.right[0] + dy * mouth.right[1]) / (mouth.width / 2)
        dv = (dx * mouth.down[0] + dy * mouth.down[1]) / max(mouth.gap / 2, 1.0)
        return du, dv

    def _cavity_colour(self, mouth: _Mouth, box: Box) -> np.ndarray:
        """Dark red near the lips to near black at the back (the centre of the opening)."""
        du, dv = self._grid(mouth, box)
        depth = np.clip(1.0 - np.sqrt(du * du + dv * dv), 0.0, 1.0) ** 0.6
        return _CAVITY_EDGE + (_CAVITY_DEEP - _CAVITY_EDGE) * depth[..., None]

    def _paint_teeth(
        self, patch: np.ndarray, upper: np.ndarray, mouth: _Mouth, box: Box, alpha: np.ndarray
    ) -> None:
        """A soft band under the upper inner lip: even in the middle, tapering to the corners.

        Shaded darker towards the corners and the lower edge, as teeth in the mouth's shadow.
        """
        depth = min(0.4 * mouth.gap, 0.16 * mouth.width)
        taper = np.clip(1.8 * np.sin(np.linspace(0.0, np.pi, len(upper))), 0.1, 1.0)[:, None]
        band = np.vstack([upper - mouth.down, (upper + mouth.down * depth * taper)[::-1]])
        alpha = alpha * _poly_mask(band, box, max(0.6, 0.015 * mouth.width)) * 0.9
        du, dv = self._grid(mouth, box)
        below_lip = np.clip((dv + 1.0) * max(mouth.gap / 2, 1.0) / max(depth, 1.0), 0.0, 1.0)
        shade = np.clip(1.0 - 0.5 * du * du - 0.25 * below_lip, 0.35, 1.0)[..., None]
        patch += (_TEETH * shade - patch) * alpha[..., None]

    def _paint_own(self, patch: np.ndarray, upper: np.ndarray, box: Box, alpha: np.ndarray) -> None:
        """The reference's interior, moved with the upper lip, inside the destination opening."""
        assert self._layer is not None
        layer, layer_mask, origin = self._layer
        m = similarity_transform(self._upper_ref, upper)  # reference -> destination pixels
        m[:, 2] += m[:, :2] @ origin - np.array(box[:2], dtype=np.float64)  # patch to patch
        size = (box[2] - box[0], box[3] - box[1])
        flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
        moved = cv2.warpAffine(layer, m, size, flags=flags, borderMode=border)
        alpha = alpha * cv2.warpAffine(layer_mask, m, size, flags=flags)
        patch += (moved - patch) * alpha[..., None]


class _EyelidShadow:
    """Darkens the lid line of an eye that closes, where the warp alone leaves skin on skin."""

    _EYES = (("right_eye", 36), ("left_eye", 42))

    def __init__(self, vertices: np.ndarray) -> None:
        self._ref = [self._openness(vertices, a) for _, a in self._EYES]

    @staticmethod
    def _openness(points: np.ndarray, a: int) -> float:
        """Eye aspect ratio: mean lid distance over the corner distance."""
        p = points[a : a + 6]
        width = float(np.hypot(*(p[3] - p[0])))
        lids = np.hypot(*(p[1] - p[5])) + np.hypot(*(p[2] - p[4]))
        return float(lids / (2 * width)) if width > 1e-6 else 0.0

    def apply(self, out: np.ndarray, vertices: np.ndarray) -> None:
        """Darken along the upper lid of each eye closed beyond half its reference opening."""
        size = (out.shape[1], out.shape[0])
        for ref, (name, a) in zip(self._ref, self._EYES, strict=True):
            if ref < 0.05:  # the reference eye is already closed: nothing to add
                continue
            strength = _LID_SHADOW * _smoothstep(1.0 - self._openness(vertices, a) / ref, 0.5, 1.0)
            if strength <= 0:
                continue
            lid = vertices[list(CONTOURS[name][:7])]  # corner, upper lid, corner
            sigma = max(0.7, 0.05 * float(np.hypot(*(lid[-1] - lid[0]))))
            box = _patch_box(lid, 3 * sigma + 2, size)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            alpha = _poly_mask(lid, box, sigma, closed=False) * strength
            patch = out[y0:y1, x0:x1].astype(np.float32) * (1.0 - alpha)[..., None]
            out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# The warper
# --------------------------------------------------------------------------------------------


class LandmarkWarper:
    """Warps one reference image so that its 68 landmarks follow given points.

    Build it once per reference (mesh, mouth layer and buffers are prepared here), then call
    :meth:`render` for every frame.  The reference image is copied, never modified.

    Attributes: ``size`` ``(width, height)``, ``reference_points`` ``[68, 2]`` float64,
    ``mesh`` (:class:`WarpMesh`) and ``image`` (the read-only copy of the reference).  One
    instance reuses its buffers between frames: use one per thread.
    """

    def __init__(
        self,
        image: np.ndarray,
        points: ArrayLike,
        *,
        mouth_interior: bool = True,
        teeth: bool = True,
        eyelid_shadow: bool = True,
        forehead_height: float = 0.5,
        ring_margin: float = 0.8,
    ) -> None:
        """``image`` is RGB uint8 ``[H, W, 3]``; ``points`` the reference's ``[68, 2]`` (x, y).

        ``mouth_interior`` paints a cavity where the mouth opens wider than in the reference
        (``teeth``: with a soft teeth band for a closed reference); ``eyelid_shadow`` darkens
        the lid line of closing eyes.  ``forehead_height`` and ``ring_margin`` place the head
        anchors and the fixed ring, in units of half the jaw width (see :func:`build_mesh`).
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {img.dtype} {img.shape}")
        self._image = np.ascontiguousarray(img).copy()
        self._image.setflags(write=False)
        h, w = img.shape[:2]
        self.size = (w, h)
        ref = self._check_points(points)
        if not np.isfinite(ref).all():
            raise ValueError("reference landmarks contain NaN or infinite values")
        self.reference_points = ref
        self.mesh = build_mesh(
            ref, self.size, forehead_height=forehead_height, ring_margin=ring_margin
        )
        verts = self.mesh.vertices
        self._ref_stable = ref[list(STABLE_POINTS)]
        self._ref_head = verts[NUM_CORE : NUM_CORE + self.mesh.num_head]
        self._mouth = _MouthInterior(self._image, verts, teeth=teeth) if mouth_interior else None
        self._lids = _EyelidShadow(verts) if eyelid_shadow else None
        small = len(self.mesh.triangles) < 256  # the id T (identity) must fit too
        self._ids = np.empty((h, w), dtype=np.uint8 if small else np.uint16)
        self._lut = np.zeros((6, 256 if small else 65536), dtype=np.float32)
        self._xs = np.arange(w, dtype=np.float32)[None, :]
        self._ys = np.arange(h, dtype=np.float32)[:, None]

    @staticmethod
    def _check_points(points: ArrayLike) -> np.ndarray:
        arr = np.asarray(getattr(points, "points", points), dtype=np.float64)
        if arr.shape != (NUM_POINTS, 2):
            raise ValueError(f"expected landmarks of shape [68, 2], got {list(arr.shape)}")
        return arr

    @property
    def image(self) -> np.ndarray:
        """The (read-only) reference image."""
        return self._image

    def vertices_for(self, points: ArrayLike) -> np.ndarray:
        """All mesh vertices ``[N, 2]`` for destination landmarks ``points``.

        Non-finite landmarks fall back to the reference and far-away ones are clamped a few
        image sizes out (so rasterisation never overflows); contour midpoints follow the
        landmarks, head anchors the similarity fitted on :data:`STABLE_POINTS`; fixed anchors
        stay.
        """
        pts = self._check_points(points).copy()
        bad = ~np.isfinite(pts)
        pts[bad] = self.reference_points[bad]
        side = max(self.size)
        np.clip(pts, -_FAR * side, (_FAR + 1) * side, out=pts)
        moved = self.mesh.vertices.copy()
        moved[:NUM_CORE] = _core_vertices(pts)
        if self.mesh.num_head:
            m = similarity_transform(self._ref_stable, pts[list(STABLE_POINTS)])
            head = np.clip(_apply(m, self._ref_head), -_FAR * side, (_FAR + 1) * side)
            moved[NUM_CORE : NUM_CORE + self.mesh.num_head] = head
        return moved

    def render(self, points: ArrayLike) -> np.ndarray:
        """The reference warped so that its landmarks move to ``points``: RGB uint8 [H, W, 3]."""
        dst = self.vertices_for(points)
        out = self._image.copy()
        box = self._moved_box(dst)
        if box is None:
            return out
        x0, y0, x1, y1 = box
        map_x, map_y = self._maps(dst, box)
        out[y0:y1, x0:x1] = cv2.remap(
            self._image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if self._mouth is not None:
            self._mouth.apply(out, dst)
        if self._lids is not None:
            self._lids.apply(out, dst)
        return out

    def _moved_box(self, dst: np.ndarray) -> Box | None:
        """Bounding box of the destination triangles with a moved vertex, clipped to the image.

        Outside it every pixel lies in a triangle that did not move (the mesh tiles the image),
        whose backward map is the identity, so the reference pixels are already right there.
        """
        moved = np.abs(dst - self.mesh.vertices).max(axis=1) > _MOVE_EPS
        if not moved.any():
            return None
        tris = self.mesh.triangles[moved[self.mesh.triangles].any(axis=1)]
        return _patch_box(dst[tris.ravel()], 1.0, self.size)

    def _backward_affines(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per triangle, the 2x3 affine from destination to reference ([T, 2, 3]) and a status.

        Status: 1 for a drawable triangle, -1 for one folded over (drawn first, so underneath),
        0 for one squashed to (almost) nothing (not drawn; its affine would be ill-conditioned).
        """
        tris = self.mesh.triangles
        d, s = dst[tris], self.mesh.vertices[tris]  # [T, 3, 2]
        area = _cross(d[:, 0], d[:, 1], d[:, 2])
        ok = np.abs(area) > _MIN_AREA
        dh = np.concatenate([d.transpose(0, 2, 1), np.ones((len(tris), 1, 3))], axis=1)
        dh[~ok] = np.eye(3)
        affine = s.transpose(0, 2, 1) @ np.linalg.inv(dh)  # [T, 2, 3]
        status = np.where(ok, np.where(area * self.mesh.orientation < 0, -1, 1), 0)
        return affine, status

    def _triangle_ids(self, dst: np.ndarray, box: Box, status: np.ndarray) -> np.ndarray:
        """Rasterise destination triangles into a triangle-id map of ``box`` (folded first).

        Pixels no triangle covers keep the id ``T``, whose affine is the identity.
        """
        x0, y0, x1, y1 = box
        ids = self._ids[: y1 - y0, : x1 - x0]
        ids.fill(len(self.mesh.triangles))
        d = dst[self.mesh.triangles]
        lo, hi = d.min(axis=1), d.max(axis=1)
        visible = (hi[:, 0] >= x0) & (lo[:, 0] < x1) & (hi[:, 1] >= y0) & (lo[:, 1] < y1)
        fixed = np.rint((d - (x0, y0)) * (1 << _SHIFT)).astype(np.int32)
        for wanted in (-1, 1):
            for t in np.flatnonzero(visible & (status == wanted)):
                cv2.fillConvexPoly(ids, fixed[t], int(t), cv2.LINE_8, _SHIFT)
        return ids

    def _maps(self, dst: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """``map_x``, ``map_y`` (float32, ``box``-sized) for :func:`cv2.remap`.

        The six affine coefficients of every pixel's triangle are gathered with ``cv2.LUT`` on
        the id map (one table lookup per coefficient, no per-pixel Python or fancy indexing).
        """
        affine, status = self._backward_affines(dst)
        ids = self._triangle_ids(dst, box, status)
        x0, y0, x1, y1 = box
        count = len(affine)
        coeffs = np.concatenate([affine, [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]])  # + identity
        coeffs[..., 2] += coeffs[..., 0] * x0 + coeffs[..., 1] * y0  # to the box's pixel grid
        self._lut[:, : count + 1] = coeffs.reshape(count + 1, 6).T
        xs, ys = self._xs[:, : x1 - x0], self._ys[: y1 - y0]
        a, b, c, d, e, f = (cv2.LUT(ids, self._lut[k]) for k in range(6))
        return a * xs + b * ys + c, d * xs + e * ys + f
