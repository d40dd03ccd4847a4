"""The exact face warp: piecewise affine over the face and the apron, by lookup tables.

Each destination triangle gets the 2x3 affine that maps it back onto its reference triangle; a
per-pixel triangle-id map is rasterised with ``cv2.fillConvexPoly`` and the affine coefficients
are gathered with ``cv2.LUT`` and fused multiply-adds into the maps, with no per-pixel Python or
fancy indexing.  Triangles that fold over (their orientation flips) are drawn *under* the
others, so a fold shows the neighbouring texture rather than a mirrored copy; triangles squashed
to nothing are skipped.  Where the face meets the smooth field beyond it (:mod:`.exterior`),
the two maps are cross-faded by the reference's hand-over weight; across the middle of the face
the face's maps are written straight in.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceshot_backends.warp_engine.mesh import WarpMesh
from faceshot_backends.warp_engine.raster import SHIFT, Box, Planes, within

_MIN_AREA = 1e-3  # px^2 (twice the area): smaller destination triangles cover no pixel


class FaceWarp:
    """The face warp of one reference: its ``mesh``, the image ``size`` and hand-over ``weight``.

    ``rows`` is the most rows a band passed to :meth:`band` has; ``far`` a distance (px) well
    outside the image where pixels no triangle covers are sent.  One instance reuses its
    buffers between frames: use one per thread.
    """

    def __init__(
        self, mesh: WarpMesh, size: tuple[int, int], weight: np.ndarray, *, rows: int, far: float
    ) -> None:
        w, h = size
        drawn = mesh.num_moving + mesh.num_apron
        face = (mesh.triangles < drawn).all(axis=1)  # the face and the apron
        self._triangles = mesh.triangles[face]
        self._orientation = mesh.orientation[face]
        self._ref = mesh.vertices
        self._weight = weight
        self._far = far
        small = len(self._triangles) < 256  # the id T (uncovered) must fit too
        self._ids = np.empty((h, w), dtype=np.uint8 if small else np.uint16)
        self._lut = np.zeros((6, 256 if small else 65536), dtype=np.float32)
        self._on_face = np.zeros(256 if small else 65536, dtype=np.uint8)  # face, not apron
        self._on_face[np.flatnonzero((self._triangles < mesh.num_moving).all(axis=1))] = 1
        # Pixel coordinates, whole planes (cv2's fused multiply-adds take no broadcasting).
        self._grid_x = np.repeat(np.arange(w, dtype=np.float32)[None, :], h, axis=0)
        self._grid_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
        self._planes = Planes(4, w * rows)  # face map x, y, a temporary, the weight

    @property
    def triangles(self) -> np.ndarray:
        """The triangles drawn (face and apron), ``[T, 3]`` mesh vertex indices."""
        return self._triangles

    def band(
        self,
        ids: np.ndarray,
        face_box: Box,
        inner: Box,
        band: Box,
        map_x: np.ndarray,
        map_y: np.ndarray,
    ) -> None:
        """The face warp over ``inner`` (a band's part of ``face_box``), into the band's maps.

        Across the middle of a band, where every row lies on the face proper (no apron, no
        uncovered pixel), the face warp's maps are written straight in; only the sides, where
        the face hands over to the smooth field, are blended (weight and blend are half the
        per-pixel work of the face warp).
        """
        rows, cols = within(inner, face_box)
        on_face = cv2.LUT(ids[rows, cols], self._on_face).min(axis=0)
        core = np.flatnonzero(on_face)
        x0, y0, x1, y1 = inner
        parts = [inner]
        if len(core) and on_face[core[0] : core[-1] + 1].all():
            c0, c1 = x0 + int(core[0]), x0 + int(core[-1]) + 1
            middle = (c0, y0, c1, y1)
            at = within(middle, band)
            self._face_maps(ids, face_box, middle, (map_x[at], map_y[at]))
            parts = [(x0, y0, c0, y1), (c1, y0, x1, y1)]
        for part in parts:
            if part[2] > part[0]:
                at = within(part, band)
                self._blend_face(ids, face_box, part, map_x[at], map_y[at])

    def _blend_face(
        self, ids: np.ndarray, face_box: Box, box: Box, map_x: np.ndarray, map_y: np.ndarray
    ) -> None:
        """Hand the maps of ``box`` (inside ``face_box``) over to the exact face warp, in place.

        The weight is the reference's :attr:`~.exterior.ExteriorField.inside_weight` at the
        point the face warp maps each pixel to: 1 on the face, fading to 0 across the apron,
        and 0 beyond it (where the face warp sends pixels far out of the image).  The weight
        changes by a few hundredths per pixel at most, so the nearest sample is enough (and
        five times cheaper than a bilinear one).
        """
        face_x, face_y = self._face_maps(ids, face_box, box)
        weight = self._planes.get(3, face_x.shape)
        cv2.remap(self._weight, face_x, face_y, cv2.INTER_NEAREST, weight)
        for face, target in ((face_x, map_x), (face_y, map_y)):
            cv2.subtract(face, target, face)
            cv2.accumulateProduct(face, weight, target)  # target += (face - target) weight

    def _backward_affines(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per triangle, the 2x3 affine from destination to reference ([T, 2, 3]) and a status.

        Status: 1 for a drawable triangle, -1 for one folded over (drawn first, so underneath),
        0 for one squashed to (almost) nothing (not drawn; its affine would be ill-conditioned).
        """
        tris = self._triangles
        d, src = dst[tris], self._ref[tris]  # [T, 3, 2]
        e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
        area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        ok = np.abs(area) > _MIN_AREA
        inv_area = 1.0 / np.where(ok, area, 1.0)
        f1, f2 = src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]
        # [f1 f2] [e1 e2]^-1, the linear part; then the offset that maps d0 onto s0.
        lin = np.empty((len(tris), 2, 2))
        for k in range(2):
            lin[:, k, 0] = (f1[:, k] * e2[:, 1] - f2[:, k] * e1[:, 1]) * inv_area
            lin[:, k, 1] = (f2[:, k] * e1[:, 0] - f1[:, k] * e2[:, 0]) * inv_area
        lin[~ok] = np.eye(2)
        offset = src[:, 0] - np.einsum("tij,tj->ti", lin, d[:, 0])
        offset[~ok] = 0.0
        affine = np.concatenate([lin, offset[:, :, None]], axis=2)  # [T, 2, 3]
        status = np.where(ok, np.where(area * self._orientation < 0, -1, 1), 0)
        return affine, status

    def _triangle_ids(self, dst: np.ndarray, box: Box, status: np.ndarray) -> np.ndarray:
        """Rasterise destination triangles into a triangle-id map of ``box`` (folded first).

        Pixels no triangle covers keep the id ``T``, whose affine is the identity.
        """
        x0, y0, x1, y1 = box
        ids = self._ids[: y1 - y0, : x1 - x0]
        ids.fill(len(self._triangles))
        d = dst[self._triangles]
        lo, hi = d.min(axis=1), d.max(axis=1)
        visible = (hi[:, 0] >= x0) & (lo[:, 0] < x1) & (hi[:, 1] >= y0) & (lo[:, 1] < y1)
        fixed = np.rint((d - (x0, y0)) * (1 << SHIFT)).astype(np.int32)
        for wanted in (-1, 1):
            for t in np.flatnonzero(visible & (status == wanted)):
                cv2.fillConvexPoly(ids, fixed[t], int(t), cv2.LINE_8, SHIFT)
        return ids

    def prepare(self, dst: np.ndarray, box: Box) -> np.ndarray:
        """Rasterise the face's triangle ids over ``box`` and fill the affine lookup tables.

        The coefficients are relative to ``box``'s corner; uncovered pixels get the id ``T``,
        whose "affine" sends them far out of the image (where the face warp's weight is 0).
        """
        affine, status = self._backward_affines(dst)
        ids = self._triangle_ids(dst, box, status)
        count = len(affine)
        far = -self._far
        coeffs = np.concatenate([affine, [[[0.0, 0.0, far], [0.0, 0.0, far]]]])
        coeffs[..., 2] += coeffs[..., 0] * box[0] + coeffs[..., 1] * box[1]
        self._lut[:, : count + 1] = coeffs.reshape(count + 1, 6).T
        return ids

    def _face_maps(
        self,
        ids: np.ndarray,
        face_box: Box,
        box: Box,
        out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``map_x``, ``map_y`` (float32) of the face warp over ``box``, part of ``face_box``.

        The six affine coefficients of every pixel's triangle are gathered with ``cv2.LUT`` on
        the id map (one table lookup per coefficient, no per-pixel Python or fancy indexing).
        Written into ``out`` when given, else into scratch planes.
        """
        rows, cols = within(box, face_box)
        shape = (box[3] - box[1], box[2] - box[0])
        ids = ids[rows, cols]
        xs, ys = self._grid_x[rows, cols], self._grid_y[rows, cols]  # relative to face_box
        temp = self._planes.get(2, shape)
        maps = []
        for k in (0, 1):  # x = a x + b y + c, then y = d x + e y + f
            m = self._planes.get(k, shape) if out is None else out[k]
            cv2.LUT(ids, self._lut[3 * k + 2], m)
            cv2.LUT(ids, self._lut[3 * k], temp)
            cv2.accumulateProduct(temp, xs, m)
            cv2.LUT(ids, self._lut[3 * k + 1], temp)
            cv2.accumulateProduct(temp, ys, m)
            maps.append(m)
        return maps[0], maps[1]
