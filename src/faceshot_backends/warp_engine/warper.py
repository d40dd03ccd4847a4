"""The warper: one reference image, warped per frame so its landmarks follow given points.

Everything expensive is decided once per reference (mesh, smooth field, mouth layer, buffers),
so that a frame costs a few milliseconds:

* **Face.**  Only triangles of the face and the apron with a moved vertex matter; their bounding
  box is the only region recomputed.  Each destination triangle gets the 2x3 affine that maps it
  back onto its reference triangle; a per-pixel triangle-id map is rasterised with
  ``cv2.fillConvexPoly`` and the affine coefficients are gathered with ``cv2.LUT`` into the
  maps.  Triangles that fold over (their orientation flips) are drawn *under* the others, so a
  fold shows the neighbouring texture rather than a mirrored copy; triangles squashed to
  nothing are skipped.
* **Beyond the face.**  The smooth field of :mod:`.exterior` (hair, ears, neck, background),
  cross-faded with the face's maps across the apron.
* **Sampling.**  One ``cv2.remap`` (bilinear, reflecting at the image border, where content
  slides in with a head that fills the frame) samples the reference; the mouth interior and
  the lid shadow are painted on top.

Every per-pixel array is a reused plane (:class:`~.raster.Planes`): fresh megabyte arrays
every frame cost more in page faults than the arithmetic does.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

from faceshot_backends.warp_engine.contours import NUM_CORE, core_vertices
from faceshot_backends.warp_engine.exterior import ExteriorField, Forward
from faceshot_backends.warp_engine.eyelids import EyelidShadow
from faceshot_backends.warp_engine.geometry import (
    apply_affine,
    cross,
    face_frame,
    similarity_transform,
)
from faceshot_backends.warp_engine.mesh import build_mesh
from faceshot_backends.warp_engine.mouth import MouthInterior
from faceshot_backends.warp_engine.raster import SHIFT, Box, Planes, patch_box
from faceshot_core.schema import NUM_POINTS

#: Landmarks an expression barely moves: the head's similarity motion is fitted on these.
STABLE_POINTS = (0, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)

_MOVE_EPS = 1e-3  # px: a vertex that moved less than this is treated as fixed
_MIN_AREA = 1e-3  # px^2 (twice the area): smaller destination triangles cover no pixel
_FAR = 4.0  # points are clamped to this many image sizes beyond the border


class LandmarkWarper:
    """Warps one reference image so that its 68 landmarks follow given points.

    Build it once per reference (mesh, mouth layer and buffers are prepared here), then call
    :meth:`render` for every frame.  The reference image is copied, never modified.

    Attributes: ``size`` ``(width, height)``, ``reference_points`` ``[68, 2]`` float64,
    ``mesh`` (:class:`~.mesh.WarpMesh`) and ``image`` (the read-only copy of the reference).  One
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
        apron_width: float = 0.25,
        falloff: float = 0.8,
    ) -> None:
        """``image`` is RGB uint8 ``[H, W, 3]``; ``points`` the reference's ``[68, 2]`` (x, y).

        ``mouth_interior`` paints a cavity where the mouth opens wider than in the reference
        (``teeth``: with a soft teeth band for a closed reference); ``eyelid_shadow`` darkens
        the lid line of closing eyes.  ``forehead_height`` and ``apron_width`` place the head
        anchors and the apron (see :func:`build_mesh`), and ``falloff`` is the distance beyond
        the face over which its motion fades out (at least: see :mod:`.exterior`), all in units
        of half the jaw width.
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
            ref, self.size, forehead_height=forehead_height, apron_width=apron_width
        )
        verts = self.mesh.vertices
        self._ref_stable = ref[list(STABLE_POINTS)]
        self._ref_head = verts[NUM_CORE : NUM_CORE + self.mesh.num_head]
        self._num_moving = self.mesh.num_moving
        _, _, half_width = face_frame(ref)
        self._exterior = ExteriorField(self.mesh, self.size, falloff=falloff * half_width)
        drawn = self.mesh.num_moving + self.mesh.num_apron
        self._apron = slice(self.mesh.num_moving, drawn)
        face = (self.mesh.triangles < drawn).all(axis=1)  # the face and the apron
        self._triangles = self.mesh.triangles[face]
        self._orientation = self.mesh.orientation[face]
        self._mouth = MouthInterior(self._image, verts, teeth=teeth) if mouth_interior else None
        self._lids = EyelidShadow(verts) if eyelid_shadow else None
        small = len(self._triangles) < 256  # the id T (identity) must fit too
        self._ids = np.empty((h, w), dtype=np.uint8 if small else np.uint16)
        self._lut = np.zeros((6, 256 if small else 65536), dtype=np.float32)
        # Pixel coordinates, whole planes (cv2's fused multiply-adds take no broadcasting).
        self._grid_x = np.repeat(np.arange(w, dtype=np.float32)[None, :], h, axis=0)
        self._grid_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
        self._planes = Planes(6, w * h)  # face map x, y, a temporary, the weight, identity x, y

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
        landmarks, head anchors the similarity fitted on :data:`STABLE_POINTS`, the apron the
        smooth field outside the face; border vertices stay.
        """
        return self._frame(points)[0]

    def _frame(self, points: ArrayLike) -> tuple[np.ndarray, Forward | None]:
        """The mesh vertices for ``points`` and the smooth field outside the face (None: still)."""
        pts = self._check_points(points).copy()
        bad = ~np.isfinite(pts)
        pts[bad] = self.reference_points[bad]
        side = max(self.size)
        np.clip(pts, -_FAR * side, (_FAR + 1) * side, out=pts)
        moved = self.mesh.vertices.copy()
        moved[:NUM_CORE] = core_vertices(pts)
        if self.mesh.num_head:
            m = similarity_transform(self._ref_stable, pts[list(STABLE_POINTS)])
            head = np.clip(apply_affine(m, self._ref_head), -_FAR * side, (_FAR + 1) * side)
            moved[NUM_CORE : NUM_CORE + self.mesh.num_head] = head
        moving = slice(0, self._num_moving)
        forward = self._exterior.forward(moved[moving] - self.mesh.vertices[moving])
        if forward is not None:
            moved[self._apron] += forward.apron
        return moved, forward

    def backward_map(self, points: ArrayLike) -> np.ndarray:
        """The map :meth:`render` samples the reference with: ``[H, W, 2]`` float32 (x, y).

        Each frame pixel's position in the reference (the mouth and lid painters aside): the
        identity where nothing moves.  For tests and inspection; :meth:`render` computes only
        the moved part.
        """
        dst, forward = self._frame(points)
        full = np.dstack([self._grid_x, self._grid_y])
        box, map_x, map_y = self._box_maps(dst, forward)
        if box is not None:
            x0, y0, x1, y1 = box
            full[y0:y1, x0:x1] = np.dstack([map_x, map_y])
        return full

    def render(self, points: ArrayLike) -> np.ndarray:
        """The reference warped so that its landmarks move to ``points``: RGB uint8 [H, W, 3]."""
        dst, forward = self._frame(points)
        out = self._image.copy()
        box, map_x, map_y = self._box_maps(dst, forward)
        if box is None:
            return out
        x0, y0, x1, y1 = box
        maps = cv2.merge([map_x, map_y])  # one interleaved map: remap reads it faster
        # map2 is None for an interleaved map1, which OpenCV's stubs do not know.
        cv2.remap(self._image, maps, None, cv2.INTER_LINEAR, out[y0:y1, x0:x1],  # type: ignore[call-overload]
                  cv2.BORDER_REFLECT_101)  # fmt: skip
        if self._mouth is not None:
            self._mouth.apply(out, dst)
        if self._lids is not None:
            self._lids.apply(out, dst)
        return out

    def _box_maps(
        self, dst: np.ndarray, forward: Forward | None
    ) -> tuple[Box | None, np.ndarray, np.ndarray]:
        """The box where anything moves, and the backward maps of its pixels.

        The smooth field's maps, handed over to the exact face warp on the face and the apron.
        """
        back = None if forward is None else self._exterior.backward(forward)
        face_box = self._moved_box(dst)
        box = _union(face_box, None if back is None else self._exterior.moved_box(back))
        if box is None:
            return None, self._grid_x[:0, :0], self._grid_y[:0, :0]
        x0, y0, x1, y1 = box
        if back is None:  # only the inside of the face moved: the field outside is the identity
            map_x, map_y = (self._planes.get(k, (y1 - y0, x1 - x0)) for k in (4, 5))
            map_x[:] = self._grid_x[y0:y1, x0:x1]
            map_y[:] = self._grid_y[y0:y1, x0:x1]
        else:
            map_x, map_y = self._exterior.maps(back, box)
        if face_box is not None:
            inner = _within(face_box, box)
            self._blend_face(dst, face_box, map_x[inner], map_y[inner])
        return box, map_x, map_y

    def _blend_face(self, dst: np.ndarray, box: Box, map_x: np.ndarray, map_y: np.ndarray) -> None:
        """Hand the maps of ``box`` over to the exact face warp, in place.

        The weight is the reference's :attr:`~.exterior.ExteriorField.inside_weight` at the
        point the face warp maps each pixel to: 1 on the face, fading to 0 across the apron,
        and 0 beyond it (where the face warp sends pixels far out of the image).  The weight
        changes by a few hundredths per pixel at most, so the nearest sample is enough (and
        five times cheaper than a bilinear one).
        """
        face_x, face_y = self._maps(dst, box)
        weight = self._planes.get(3, face_x.shape)
        cv2.remap(self._exterior.inside_weight, face_x, face_y, cv2.INTER_LINEAR, weight)
        for face, target in ((face_x, map_x), (face_y, map_y)):
            cv2.subtract(face, target, face)
            cv2.accumulateProduct(face, weight, target)  # target += (face - target) weight

    def _moved_box(self, dst: np.ndarray) -> Box | None:
        """Bounding box of the destination triangles with a moved vertex, clipped to the image.

        Outside it every pixel lies in a triangle that did not move (the mesh tiles the image),
        whose backward map is the identity, so the reference pixels are already right there.
        """
        moved = np.abs(dst - self.mesh.vertices).max(axis=1) > _MOVE_EPS
        if not moved.any():
            return None
        tris = self._triangles[moved[self._triangles].any(axis=1)]
        return patch_box(dst[tris.ravel()], 1.0, self.size) if len(tris) else None

    def _backward_affines(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per triangle, the 2x3 affine from destination to reference ([T, 2, 3]) and a status.

        Status: 1 for a drawable triangle, -1 for one folded over (drawn first, so underneath),
        0 for one squashed to (almost) nothing (not drawn; its affine would be ill-conditioned).
        """
        tris = self._triangles
        d, s = dst[tris], self.mesh.vertices[tris]  # [T, 3, 2]
        area = cross(d[:, 0], d[:, 1], d[:, 2])
        ok = np.abs(area) > _MIN_AREA
        dh = np.concatenate([d.transpose(0, 2, 1), np.ones((len(tris), 1, 3))], axis=1)
        dh[~ok] = np.eye(3)
        affine = s.transpose(0, 2, 1) @ np.linalg.inv(dh)  # [T, 2, 3]
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

    def _maps(self, dst: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """``map_x``, ``map_y`` (float32, ``box``-sized) for :func:`cv2.remap`.

        The six affine coefficients of every pixel's triangle are gathered with ``cv2.LUT`` on
        the id map (one table lookup per coefficient, no per-pixel Python or fancy indexing).
        """
        affine, status = self._backward_affines(dst)
        ids = self._triangle_ids(dst, box, status)
        x0, y0, x1, y1 = box
        count = len(affine)
        far = -_FAR * max(self.size)  # uncovered pixels: sent far out, where the weight is 0
        coeffs = np.concatenate([affine, [[[0.0, 0.0, far], [0.0, 0.0, far]]]])
        coeffs[..., 2] += coeffs[..., 0] * x0 + coeffs[..., 1] * y0  # to the box's pixel grid
        self._lut[:, : count + 1] = coeffs.reshape(count + 1, 6).T
        shape = (y1 - y0, x1 - x0)
        xs, ys = self._grid_x[: shape[0], : shape[1]], self._grid_y[: shape[0], : shape[1]]
        temp = self._planes.get(2, shape)
        maps = []
        for k in (0, 1):  # x = a x + b y + c, then y = d x + e y + f
            m = self._planes.get(k, shape)
            cv2.LUT(ids, self._lut[3 * k + 2], m)
            cv2.LUT(ids, self._lut[3 * k], temp)
            cv2.accumulateProduct(temp, xs, m)
            cv2.LUT(ids, self._lut[3 * k + 1], temp)
            cv2.accumulateProduct(temp, ys, m)
            maps.append(m)
        return maps[0], maps[1]


def _within(inner: Box, outer: Box) -> tuple[slice, slice]:
    """Index of box ``inner`` in an array covering box ``outer`` (which holds it)."""
    return slice(inner[1] - outer[1], inner[3] - outer[1]), slice(
        inner[0] - outer[0], inner[2] - outer[0]
    )


def _union(a: Box | None, b: Box | None) -> Box | None:
    """The smallest box holding both (either may be None)."""
    if a is None or b is None:
        return a or b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
