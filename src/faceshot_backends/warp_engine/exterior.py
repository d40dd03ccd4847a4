"""The smooth displacement field outside the face: what hair, ears, whiskers and background do.

Inside the face the warp is piecewise affine, which is right for the features the landmarks
outline.  Outside it, a piecewise-affine field over a few large triangles stretched between the
face and a fixed ring bends every straight structure (a whisker, a hair strand, the edge of an
ear, a background line) at each triangle edge, shows a stair-stepped seam where the moving
triangles meet the still ones and, pinned to the image border, smears the fur between the crown
and the top edge.  Out there the motion is a smooth field instead:

* **Harmonic extension.**  The forward displacement (reference -> frame) is known on the face
  (the mesh triangles whose vertices the landmarks move): there it is the piecewise-affine
  field, linear in the vertex motion.  Beyond, it is the harmonic extension of that (Laplace's
  equation on a coarse grid, free - Neumann - at the grid's border): as smooth as a field can
  be, continuous with the face, with no triangle edges.  The image border is not pinned: the fur
  at the edge of a face that fills the frame slides with the head, and the warp samples the
  reference with reflection there rather than replicating its last row.
* **Falloff.**  The extension fades out with a smoothstep of the distance from the apron, so the
  background further out stays still.  The fade spans ``falloff`` pixels, or more when the
  face's edge moves further than that allows without folding the background over (at least
  :data:`_STRETCH` times that motion).
* **Precomputed.**  The extension is linear in the vertex motion: one matrix
  ``[nodes, vertices]`` built once per reference.  A frame costs one small matrix product, a
  fade, a few fixed-point steps on the coarse grid turning the forward field into the backward
  one the warp samples with, and one bicubic ``cv2.resize`` up to pixels (smooth across the
  coarse cells, where a bilinear one would kink every straight line slightly).
* **Hand-over.**  The apron (:mod:`.apron`) is moved by this field, and the warp cross-fades
  from the exact piecewise-affine map on the face to this field across the apron's triangles
  (:attr:`ExteriorField.inside_weight`), so the two meet without a seam and the jaw line itself
  is warped exactly.

Grid nodes sit at cell centres, ``x = (k - 2 + 0.5) step - 0.5`` for ``k = 0 .. nx - 1`` (two
nodes beyond the image on each side, as bicubic interpolation needs), which is exactly where
``cv2.resize`` by ``step`` puts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from faceshot_backends.warp_engine.geometry import cross
from faceshot_backends.warp_engine.mesh import WarpMesh
from faceshot_backends.warp_engine.raster import SHIFT, Box, Planes

_NODES_PER_SIDE = 64  # coarse grid cells along the longer image side
_MIN_STEP = 4  # px: the coarse grid is never finer than this
_INVERT_STEPS = 5  # fixed-point steps from the forward to the backward field
_STRETCH = 2.5  # the fade spans at least this many times the motion of the face's edge
_REACH_LIMIT = 2.5  # the field is zero beyond this many times ``falloff`` from the apron
_EPS = 1e-3  # px: displacements below this count as none
_PAD = 2  # grid nodes beyond the image on each side
_FADE_SPAN = 0.7  # the hand-over spans this outer part of the apron


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def grid_step(size: tuple[int, int]) -> int:
    """Coarse grid spacing (px) for an image of ``size`` ``(width, height)``."""
    return max(_MIN_STEP, math.ceil(max(size) / _NODES_PER_SIDE))


@dataclass(frozen=True)
class Forward:
    """One frame's forward field: at the grid nodes ``[ny, nx, 2]`` and the apron ``[A, 2]``."""

    nodes: np.ndarray
    apron: np.ndarray


class ExteriorField:
    """The smooth field outside the face, the apron's motion, and the weight of the face warp.

    Built once per reference from its ``mesh``, the image ``size`` ``(width, height)`` and the
    ``falloff`` distance (px) over which the motion fades out beyond the face.
    ``blend_triangles`` are the mesh triangles the exact warp draws: the face and the apron.
    """

    def __init__(self, mesh: WarpMesh, size: tuple[int, int], *, falloff: float) -> None:
        w, h = size
        self.size = size
        self.step = step = grid_step(size)
        self.shape = (math.ceil(h / step) + 2 * _PAD, math.ceil(w / step) + 2 * _PAD)  # ny, nx
        ny, nx = self.shape
        verts, tris = mesh.vertices, mesh.triangles
        moving, drawn = mesh.num_moving, mesh.num_moving + mesh.num_apron
        face = tris[(tris < moving).all(axis=1)]
        self.blend_triangles = tris[(tris < drawn).all(axis=1)]
        ks = [(np.arange(n, dtype=np.float64) - _PAD + 0.5) * step - 0.5 for n in (nx, ny)]
        nodes = np.dstack(np.meshgrid(*ks))  # [ny, nx, 2] node positions in pixels
        pad = (_PAD + 1) * step  # the canvas holds every node: the image plus ``pad`` round it
        canvas = (h + 2 * pad, w + 2 * pad)
        ids = _triangle_ids(verts + pad, face, canvas)
        on_face = (ids >= 0).astype(np.uint8)
        drawn_mask = (_triangle_ids(verts + pad, self.blend_triangles, canvas) >= 0) | (ids >= 0)
        depth = cv2.distanceTransform(drawn_mask.astype(np.uint8), cv2.DIST_L2, 5)
        #: Weight of the exact warp at each reference pixel: 1 on the face and the inner part of
        #: the apron, fading to 0 at the apron's outer edge (and 0 beyond).  Where the apron is
        #: missing (cut off by the image border) it fades just inside the face's edge instead.
        self.inside_weight = _smoothstep(
            depth[pad:-pad, pad:-pad] / max(_FADE_SPAN * mesh.apron_width, 1.0)
        ).astype(np.float32)
        away = cv2.distanceTransform(1 - on_face, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        at = np.rint(nodes + pad).astype(np.intp)  # nearest canvas pixel of each node
        node_ids = ids[at[..., 1], at[..., 0]]
        basis = _face_basis(verts[:moving], face, node_ids, nodes)
        # The fade starts beyond the apron, so the apron moves with the face and the hand-over
        # across it is between two nearly equal maps.
        away = np.maximum(away - mesh.apron_width, 0.0)
        self._away = away[at[..., 1], at[..., 0]].ravel().astype(np.float32)  # 0 near the face
        near = self._away.reshape(self.shape) <= _REACH_LIMIT * falloff
        basis = _harmonic_extension(basis, node_ids >= 0, near)
        apron = verts[moving:drawn]
        apron_rows = _bilinear(basis, apron, self.shape, step)
        self._used = np.flatnonzero(np.abs(basis).max(axis=0) > 0)
        self._basis = np.ascontiguousarray(basis[:, self._used], dtype=np.float32)
        self._apron_basis = np.ascontiguousarray(apron_rows[:, self._used], dtype=np.float32)
        apron_at = np.clip(np.rint(apron + pad).astype(np.intp), 0, np.array(canvas[::-1]) - 1)
        self._apron_away = away[apron_at[:, 1], apron_at[:, 0]].astype(np.float32)
        beyond = self._basis[node_ids.ravel() < 0]
        self._edge = np.flatnonzero(np.abs(beyond).max(axis=0, initial=0.0) > 0)
        self._falloff = max(falloff, 1.0)
        self._nodes = nodes.astype(np.float32)
        self._node_index = np.dstack(np.meshgrid(np.arange(nx), np.arange(ny))).astype(np.float32)
        self._planes = Planes(2, nx * ny * step * step)  # (a band needs far less)

    def forward(self, motion: np.ndarray) -> Forward | None:
        """The forward field for the motion ``[num_moving, 2]`` of the moving vertices, or None.

        None when nothing outside the face moves (only the inside of the face changed).
        """
        m = motion[self._used].astype(np.float32)
        if not len(m) or np.abs(m).max() <= _EPS:
            return None
        edge = m[self._edge]
        motion_reach = _STRETCH * float(np.sqrt((edge * edge).sum(axis=1).max(initial=0)))
        reach = min(max(self._falloff, motion_reach), _REACH_LIMIT * self._falloff)
        scale = np.float32(1.0 / reach)
        nodes = (self._basis @ m) * (1.0 - _smoothstep(self._away * scale))[:, None]
        if np.abs(nodes).max() <= _EPS:
            return None
        apron = (self._apron_basis @ m) * (1.0 - _smoothstep(self._apron_away * scale))[:, None]
        return Forward(nodes.reshape(*self.shape, 2), apron.astype(np.float64))

    def backward(self, forward: Forward) -> np.ndarray:
        """Backward displacement ``[ny, nx, 2]`` at the nodes (frame -> reference).

        The forward field ``f`` on the reference nodes is inverted by fixed-point steps
        ``p = q - f(p)``, which converge where the field is smooth (beyond the face, where it is
        used: the fade keeps its slope well below 1).
        """
        field = forward.nodes
        to_node = np.float32(1.0 / self.step)
        back = -field
        for _ in range(_INVERT_STEPS):
            at = self._node_index + back * to_node  # where each frame node comes from, in nodes
            back = -cv2.remap(field, at[..., 0], at[..., 1], cv2.INTER_LINEAR, None,
                              cv2.BORDER_REPLICATE)  # fmt: skip
        return back

    def moved_box(self, back: np.ndarray) -> Box | None:
        """Pixel box where the field moves anything (the moved nodes' cells), or None."""
        moved = np.maximum(np.abs(back[..., 0]), np.abs(back[..., 1])) > _EPS
        rows, cols = np.flatnonzero(moved.any(axis=1)), np.flatnonzero(moved.any(axis=0))
        if not len(rows):
            return None
        s, (w, h) = self.step, self.size
        x0, x1 = max((cols[0] - _PAD - 2) * s, 0), min((cols[-1] - _PAD + 3) * s, w)
        y0, y1 = max((rows[0] - _PAD - 2) * s, 0), min((rows[-1] - _PAD + 3) * s, h)
        return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None

    def maps(self, back: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """The backward maps ``map_x``, ``map_y`` (reference positions) of the pixels of ``box``.

        Node positions plus displacements, upsampled bilinearly by ``cv2.resize`` (which
        reproduces the linear node positions exactly, so this is pixel position + interpolated
        displacement); float32 ``box``-sized views the caller may modify until the next call.
        """
        s = self.step
        x0, y0, x1, y1 = box
        cells = (slice(y0 // s + _PAD - 2, -(-y1 // s) + _PAD + 2),
                 slice(x0 // s + _PAD - 2, -(-x1 // s) + _PAD + 2))  # fmt: skip
        oy, ox = (cells[0].start - _PAD) * s, (cells[1].start - _PAD) * s  # pixel of up[0, 0]
        out = []
        for axis in range(2):
            part = self._nodes[..., axis][cells] + back[..., axis][cells]
            up = self._planes.get(axis, (part.shape[0] * s, part.shape[1] * s))
            cv2.resize(part, (part.shape[1] * s, part.shape[0] * s), up, 0, 0, cv2.INTER_LINEAR)
            out.append(up[y0 - oy : y1 - oy, x0 - ox : x1 - ox])
        return out[0], out[1]


def _triangle_ids(
    vertices: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Per pixel of ``shape`` (rows, cols), the index of the triangle covering it, else -1."""
    ids = np.full(shape, -1, dtype=np.int32)
    corners = vertices[triangles]
    fixed = np.rint(corners * (1 << SHIFT)).astype(np.int32)
    areas = cross(corners[:, 0], corners[:, 1], corners[:, 2])
    for t in np.flatnonzero(np.abs(areas) > 1e-6):
        cv2.fillConvexPoly(ids, fixed[t], int(t), cv2.LINE_8, SHIFT)
    return ids


def _face_basis(
    vertices: np.ndarray, triangles: np.ndarray, node_ids: np.ndarray, nodes: np.ndarray
) -> np.ndarray:
    """``[nodes, vertices]``: each node on the face as barycentric weights of its triangle.

    The forward displacement at a node is then ``basis @ motion`` (the piecewise-affine field is
    linear in the vertex motion); rows of nodes off the face are zero.
    """
    basis = np.zeros((node_ids.size, len(vertices)))
    flat = node_ids.ravel()
    inside = np.flatnonzero(flat >= 0)
    if not len(inside):
        return basis
    tri = triangles[flat[inside]]
    a, b, c = (vertices[tri[:, k]] for k in range(3))
    p = nodes.reshape(-1, 2)[inside]
    area = cross(a, b, c)
    wa, wb = cross(p, b, c) / area, cross(a, p, c) / area
    for k, weight in enumerate((wa, wb, 1.0 - wa - wb)):
        np.add.at(basis, (inside, tri[:, k]), weight)
    return basis


def _bilinear(
    rows: np.ndarray, points: np.ndarray, shape: tuple[int, int], step: int
) -> np.ndarray:
    """``rows`` ``[nodes, K]`` of the grid interpolated bilinearly at ``points`` (px): [P, K]."""
    ny, nx = shape
    k = np.clip((points + 0.5) / step + _PAD - 0.5, 0.0, np.array([nx - 1.001, ny - 1.001]))
    i0 = np.floor(k).astype(np.intp)
    fx, fy = (k - i0).T[:, :, None]
    at = i0[:, 1] * nx + i0[:, 0]
    top = rows[at] * (1 - fx) + rows[at + 1] * fx
    bottom = rows[at + nx] * (1 - fx) + rows[at + nx + 1] * fx
    return top * (1 - fy) + bottom * fy


def _harmonic_extension(basis: np.ndarray, inside: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Rows of the nodes off the face: the harmonic extension of the rows on it.

    The graph Laplacian of the 4-connected grid (free at the grid's border) is solved on the
    nodes off the face but ``near`` it, with the rows on the face as fixed values and zero
    beyond, one column per vertex on the face's edge (the other columns stay zero off the
    face).  Every region off the face touches it (the grid is connected), so the system is
    regular whenever the face holds a node.
    """
    ny, nx = inside.shape
    flat = inside.ravel()
    free = np.flatnonzero(~flat & near.ravel())
    if not len(free) or not flat.any():
        return basis
    n = len(free)
    index = np.full(flat.size, -1)
    index[free] = np.arange(n)
    row, col = np.divmod(free, nx)
    pairs_i, pairs_j, degree = [np.arange(n)], [np.arange(n)], np.zeros(n)
    rhs = np.zeros((n, basis.shape[1]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = row + dy, col + dx
        ok = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
        degree += ok
        me, other = np.flatnonzero(ok), r[ok] * nx + c[ok]
        unknown = index[other] >= 0
        pairs_i.append(me[unknown])
        pairs_j.append(index[other[unknown]])
        on_face = ~unknown & flat[other]
        rhs[me[on_face]] += basis[other[on_face]]
    values = np.concatenate([degree, -np.ones(sum(len(p) for p in pairs_i[1:]))])
    lap = sparse.csc_matrix(
        (values, (np.concatenate(pairs_i), np.concatenate(pairs_j))), shape=(n, n)
    )
    edge = np.flatnonzero(np.abs(rhs).max(axis=0) > 0)  # vertices of the face's edge
    out = basis.copy()
    # The grid order keeps the factors banded; SuperLU's fill-reducing orders make its
    # many-column solve an order of magnitude slower here.
    lu = splu(lap, permc_spec="NATURAL")
    out[np.ix_(free, edge)] = lu.solve(np.asfortranarray(rhs[:, edge]))
    return out
