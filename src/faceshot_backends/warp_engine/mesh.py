"""The reference's warp mesh: core vertices, head anchors, the apron, the border, triangulated once.

The 68 landmarks alone would leave everything outside their hull (forehead, hair,
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
- an *apron* of vertices a little outside the face (:mod:`.apron`), moved by the smooth field
  that warps everything beyond the face (:mod:`.exterior`): its triangles are where the
  piecewise-affine face warp hands over to that field;
- *border* vertices (corners and edge points), so the triangulation covers the whole image.
  The warp itself does not use the triangles beyond the apron (the smooth field covers them);
  they keep the mesh a tiling of the image, e.g. for comparing with other piecewise-affine
  warps.

The triangulation keeps the contours of the eyes, lips, brows, jaw and nose bridge, and the
corner-to-post fences, as edges (missing Delaunay edges are recovered by edge flips), so an
eye or the inner mouth is a set of triangles of its own that can close to nothing or open
from nothing.  Closed eyes and a closed mouth in the reference (coincident lid or lip points)
are pulled a hair apart for the triangulation only, so that the triangles that will open
later exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceshot_backends.warp_engine.apron import apron_points
from faceshot_backends.warp_engine.contours import (
    CONTOURS,
    LID_MARGINS,
    LID_PAIRS,
    LIP_PAIRS,
    NUM_CORE,
    core_vertices,
)
from faceshot_backends.warp_engine.geometry import face_frame, signed_areas
from faceshot_backends.warp_engine.triangulation import delaunay, enforce_edges
from faceshot_core.schema import (
    FACE_BOUNDARY,
    LEFT_BROW,
    NOSE_BRIDGE,
    NUM_POINTS,
    OUTER_LIPS,
    RIGHT_BROW,
)

_OPEN_RUNS = (FACE_BOUNDARY, RIGHT_BROW, LEFT_BROW, NOSE_BRIDGE)


@dataclass(frozen=True)
class WarpMesh:
    """The reference's warp mesh.

    ``vertices`` are the 68 landmarks and the contour midpoints (:data:`NUM_CORE` in all), then
    ``num_head`` head anchors (they follow the head's similarity motion), then ``num_apron``
    apron vertices (moved by the smooth field outside the face), then fixed border vertices.
    ``apron_width`` is the apron's distance from the face (px).  ``triangles`` index
    ``vertices``; ``orientation`` is each triangle's sign in the triangulation layout (+1, or 0
    for a sliver), against which a destination triangle's sign tells whether it folded over.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    num_head: int
    orientation: np.ndarray
    num_apron: int = 0
    apron_width: float = 0.0

    @property
    def num_moving(self) -> int:
        """Vertices that the landmarks move: the core vertices and the head anchors."""
        return NUM_CORE + self.num_head

    @property
    def num_fixed(self) -> int:
        return len(self.vertices) - self.num_moving - self.num_apron


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
    right, down, s = face_frame(points)
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


def _border(taken: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fixed vertices on the image border: the corners and three points along each edge.

    Edge points within 2 px of a vertex already ``taken`` are left out (they would make
    slivers); the four corners always stay, so the mesh covers the image.
    """
    w, h = size
    xs, ys = np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=np.float64)
    edges = np.array(
        [[x, y] for x in xs[1:-1] for y in (0, h - 1)]
        + [[x, y] for y in ys[1:-1] for x in (0, w - 1)],
        dtype=np.float64,
    )
    edge_dist = np.linalg.norm(edges[:, None] - taken[None], axis=2).min(axis=1)
    return np.vstack([corners, edges[edge_dist > 2.0]])


def _separate_closed_pairs(points: np.ndarray) -> np.ndarray:
    """Landmarks for the triangulation layout: closed lids and lips pulled a little apart.

    With coincident upper and lower points (a closed mouth or eye) Delaunay would drop one of
    them or triangulate across the opening, and the mouth could never open in the mesh.  Only
    the topology is taken from this layout; the warp uses the true reference positions.
    """
    out = points.copy()
    for pairs, a, b in ((LID_PAIRS[:2], 36, 39), (LID_PAIRS[2:], 42, 45), (LIP_PAIRS, 60, 64)):
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


def _contour_edges() -> list[tuple[int, int]]:
    """Edges the triangulation must keep: jaw, brows, nose bridge, lips, eyes, lid margins."""
    edges = [(r[i], r[i + 1]) for r in _OPEN_RUNS for i in range(len(r) - 1)]
    loops = [OUTER_LIPS, *CONTOURS.values()]
    edges += [(r[i], r[(i + 1) % len(r)]) for r in loops for i in range(len(r))]
    edges += [(r[i], r[i + 1]) for r in LID_MARGINS.values() for i in range(len(r) - 1)]
    return edges


def build_mesh(
    points: np.ndarray,
    image_size: tuple[int, int],
    *,
    forehead_height: float = 0.5,
    apron_width: float = 0.25,
) -> WarpMesh:
    """The warp mesh of a reference: landmarks, head anchors, apron, border and triangles.

    ``image_size`` is ``(width, height)``.  ``forehead_height`` places the forehead anchors
    above the brows and ``apron_width`` the apron beyond the face, both in units of half the
    jaw width (0 -> 16); the apron is never narrower than 3.5 % of the longer image side.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(NUM_POINTS, 2)
    _, _, s = face_frame(pts)
    core = core_vertices(pts)
    head, fences = _head_anchors(pts, core, image_size, forehead_height)
    moving = np.vstack([core, head])
    width = max(apron_width * s, 0.035 * max(image_size))  # >= 2 cells of the exterior grid
    apron = apron_points(moving, image_size, width)
    fixed = _border(np.vstack([moving, apron]), image_size)
    vertices = np.vstack([moving, apron, fixed])
    layout = np.vstack([core_vertices(_separate_closed_pairs(pts)), head, apron, fixed])
    edges = _contour_edges() + [(c, NUM_CORE + k) for c, k in fences]
    triangles = enforce_edges(delaunay(layout), layout, edges)
    areas = signed_areas(layout, triangles)
    flip = areas < 0
    triangles[flip] = triangles[flip][:, [0, 2, 1]]  # counter-clockwise in the layout
    orientation = np.where(np.abs(areas) > 1e-9, 1.0, 0.0)
    return WarpMesh(vertices, triangles.astype(np.int32), len(head), orientation, len(apron), width)
