"""The warper: one reference image, warped per frame so its landmarks follow given points.

Everything expensive is decided once per reference (mesh, smooth field, mouth layer, buffers),
so that a frame costs a few milliseconds:

* **Vertices.**  Landmarks and contour midpoints, head anchors (the head's similarity motion),
  the apron (the smooth field's motion at its reference position); only the region that moved
  is recomputed, in bands of rows.
* **Maps.**  The smooth field of :mod:`.exterior` (hair, ears, neck, background), handed over
  to the exact piecewise-affine face warp of :mod:`.face_warp` across the apron.
* **Sampling.**  One ``cv2.remap`` per band (bilinear, reflecting at the image border, where
  content slides in with a head that fills the frame) samples the reference; the mouth interior
  and the lid shadow are painted on top.

Every per-pixel array is a reused plane (:class:`~.raster.Planes`): fresh megabyte arrays
every frame cost more in page faults than the arithmetic does.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
from numpy.typing import ArrayLike

from faceshot_backends.warp_engine.contours import NUM_CORE, core_vertices
from faceshot_backends.warp_engine.exterior import ExteriorField, Forward
from faceshot_backends.warp_engine.eyelids import EyelidShadow
from faceshot_backends.warp_engine.face_warp import FaceWarp
from faceshot_backends.warp_engine.geometry import (
    apply_affine,
    face_frame,
    similarity_transform,
)
from faceshot_backends.warp_engine.mesh import build_mesh
from faceshot_backends.warp_engine.mouth import MouthInterior
from faceshot_backends.warp_engine.raster import Box, Planes, intersection, patch_box, union
from faceshot_core.schema import NUM_POINTS

#: Landmarks an expression barely moves: the head's similarity motion is fitted on these.
STABLE_POINTS = (0, 16, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)

_MOVE_EPS = 1e-3  # px: a vertex that moved less than this is treated as fixed
_MIN_AREA = 1e-3  # px^2 (twice the area): smaller destination triangles cover no pixel
_FAR = 4.0  # points are clamped to this many image sizes beyond the border
_BAND = 112  # rows warped at a time (maps and scratch stay in the CPU cache; fewer calls)


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
        self._num_drawn = drawn
        self._face = FaceWarp(
            self.mesh, self.size, self._exterior.inside_weight, rows=_BAND, far=_FAR * max(w, h)
        )
        self._mouth = MouthInterior(self._image, verts, teeth=teeth) if mouth_interior else None
        self._lids = EyelidShadow(verts) if eyelid_shadow else None
        self._grid_x = np.arange(w, dtype=np.float32)[None, :]
        self._grid_y = np.arange(h, dtype=np.float32)[:, None]
        self._planes = Planes(3, 2 * w * _BAND)  # per band: identity x, y; the interleaved map

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
        full = np.dstack(np.broadcast_arrays(self._grid_x, self._grid_y)).astype(np.float32)
        for (x0, y0, x1, y1), maps in self._bands(*self._frame(points)):
            full[y0:y1, x0:x1] = maps
        return full

    def render(self, points: ArrayLike) -> np.ndarray:
        """The reference warped so that its landmarks move to ``points``: RGB uint8 [H, W, 3]."""
        dst, forward = self._frame(points)
        out = self._image.copy()
        for (x0, y0, x1, y1), maps in self._bands(dst, forward):
            # map2 is None for an interleaved map1, which OpenCV's stubs do not know.
            cv2.remap(self._image, maps, None, cv2.INTER_LINEAR, out[y0:y1, x0:x1],  # type: ignore[call-overload]
                      cv2.BORDER_REFLECT_101)  # fmt: skip
        if self._mouth is not None:
            self._mouth.apply(out, dst)
        if self._lids is not None:
            self._lids.apply(out, dst)
        return out

    def _bands(self, dst: np.ndarray, forward: Forward | None) -> Iterator[tuple[Box, np.ndarray]]:
        """The moved region in bands of rows, each with its interleaved backward map [h, w, 2].

        The smooth field's maps, handed over to the exact face warp on the face and the apron.
        A band at a time, so that its maps and scratch planes stay in the CPU cache, and so that
        the middle of a band can skip the hand-over (see :meth:`_face_band`); bands of about a
        hundred rows balance that against the per-call overhead of narrower ones.
        """
        back = None if forward is None else self._exterior.backward(forward)
        face_box = self._moved_box(dst)
        box = union(face_box, None if back is None else self._exterior.moved_box(back))
        if box is None:
            return
        if face_box is not None:
            ids = self._face.prepare(dst, face_box)
        x0, y0, x1, y1 = box
        for top in range(y0, y1, _BAND):
            band = (x0, top, x1, min(top + _BAND, y1))
            shape = (band[3] - top, x1 - x0)
            if back is None:  # only the inside of the face moved: the identity outside it
                map_x, map_y = (self._planes.get(k, shape) for k in (0, 1))
                map_x[:] = self._grid_x[:, x0:x1]
                map_y[:] = self._grid_y[top : band[3]]
            else:
                map_x, map_y = self._exterior.maps(back, band)
            inner = None if face_box is None else intersection(face_box, band)
            if face_box is not None and inner is not None:
                self._face.band(ids, face_box, inner, band, map_x, map_y)
            maps = self._planes.get(2, (shape[0], 2 * shape[1])).reshape(*shape, 2)
            cv2.merge([map_x, map_y], maps)  # one interleaved map: remap reads it faster
            yield band, maps

    def _moved_box(self, dst: np.ndarray) -> Box | None:
        """Bounding box of the destination triangles with a moved vertex, clipped to the image.

        Outside it every pixel lies in a triangle that did not move (the mesh tiles the image),
        whose backward map is the identity, so the reference pixels are already right there.
        """
        drawn = dst[: self._num_drawn]
        moved = np.abs(drawn - self.mesh.vertices[: self._num_drawn]).max(axis=1) > _MOVE_EPS
        if not moved.any():
            return None
        if moved.all():  # the usual case: the box of everything drawn
            return patch_box(drawn, 1.0, self.size)
        tris = self._face.triangles[moved[self._face.triangles].any(axis=1)]
        return patch_box(dst[tris.ravel()], 1.0, self.size) if len(tris) else None
