"""The warper: one reference image, warped per frame so its landmarks follow given points.

Everything expensive is decided once per reference (mesh, mouth layer, buffers), so that a frame
costs a few milliseconds.  Per frame, only triangles with a moved vertex matter; their bounding
box is the only region recomputed.  Each destination triangle gets the 2x3 affine that maps it
back onto its reference triangle; a per-pixel triangle-id map is rasterised with
``cv2.fillConvexPoly``, the affine coefficients are gathered with ``cv2.LUT`` and turned into
``map_x``/``map_y``, and one ``cv2.remap`` (bilinear, edges replicated) samples the reference.
Triangles that fold over (their orientation flips) are drawn *under* the others, so a fold
shows the neighbouring texture rather than a mirrored copy; triangles squashed to nothing are
skipped.  The mouth interior and the lid shadow are painted on top.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

from faceshot_backends.warp_engine.contours import NUM_CORE, core_vertices
from faceshot_backends.warp_engine.eyelids import EyelidShadow
from faceshot_backends.warp_engine.geometry import apply_affine, cross, similarity_transform
from faceshot_backends.warp_engine.mesh import build_mesh
from faceshot_backends.warp_engine.mouth import MouthInterior
from faceshot_backends.warp_engine.raster import SHIFT, Box, patch_box
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
        self._mouth = MouthInterior(self._image, verts, teeth=teeth) if mouth_interior else None
        self._lids = EyelidShadow(verts) if eyelid_shadow else None
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
        moved[:NUM_CORE] = core_vertices(pts)
        if self.mesh.num_head:
            m = similarity_transform(self._ref_stable, pts[list(STABLE_POINTS)])
            head = np.clip(apply_affine(m, self._ref_head), -_FAR * side, (_FAR + 1) * side)
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
        return patch_box(dst[tris.ravel()], 1.0, self.size)

    def _backward_affines(self, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per triangle, the 2x3 affine from destination to reference ([T, 2, 3]) and a status.

        Status: 1 for a drawable triangle, -1 for one folded over (drawn first, so underneath),
        0 for one squashed to (almost) nothing (not drawn; its affine would be ill-conditioned).
        """
        tris = self.mesh.triangles
        d, s = dst[tris], self.mesh.vertices[tris]  # [T, 3, 2]
        area = cross(d[:, 0], d[:, 1], d[:, 2])
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
        coeffs = np.concatenate([affine, [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]])  # + identity
        coeffs[..., 2] += coeffs[..., 0] * x0 + coeffs[..., 1] * y0  # to the box's pixel grid
        self._lut[:, : count + 1] = coeffs.reshape(count + 1, 6).T
        xs, ys = self._xs[:, : x1 - x0], self._ys[: y1 - y0]
        a, b, c, d, e, f = (cv2.LUT(ids, self._lut[k]) for k in range(6))
        return a * xs + b * ys + c, d * xs + e * ys + f
