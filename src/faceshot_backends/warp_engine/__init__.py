"""CPU landmark-driven warp engine: a piecewise-affine backward warp of one reference image.

The built-in ``warp`` backend animates a character by moving the pixels of its reference image
so that the reference's 68 landmarks land on each frame's reposed landmarks.  Everything
expensive is decided once per reference (:class:`LandmarkWarper`), so that a frame costs a few
milliseconds:

* **Mesh.**  The 68 landmarks, smooth contour midpoints on the eyes and inner lips, head anchors
  that follow the head's similarity motion, an apron just outside the face and the image
  border, triangulated once on the reference with the facial contours kept as edges, so the
  topology never changes and an eye or the mouth can close to nothing and open again.
* **Warp.**  On the face, piecewise affine: per frame, only triangles with a moved vertex
  matter; each destination triangle gets the 2x3 affine that maps it back onto its reference
  triangle, gathered per pixel with ``cv2.LUT`` on a rasterised triangle-id map.  Beyond the
  face (hair, ears, whiskers, neck, background) a smooth field, the harmonic extension of the
  face's motion fading out with distance, so thin structures bend smoothly and nothing shows a
  seam or a stair step; the two are cross-faded across the apron.  The image border is not
  pinned, and one ``cv2.remap`` (bilinear, reflecting at the border) samples the reference.
* **Mouth and lids.**  The mouth interior is painted strictly inside the reposed inner lips:
  a cavity shaded from a darkened lip colour at the lips to near black at the back, and the
  reference's own interior split into an upper layer carried by the upper lip (upper teeth)
  and a lower one carried by the lower lip, so teeth are neither stretched nor folded as the
  mouth opens and closes; a closed reference gets a soft teeth band when it opens wide, and a
  mouth closing beyond the reference's gets a dark line where the lips meet.  A closing eye is
  the lid skin above it stretched down over it, its margin (lashes) kept as a band of fixed
  thickness that moves with the lid; a light shadow is drawn along the closed lid line.

One module per job.  Imports go one way: geometry, contours, raster and apron know nothing of
the others, triangulation builds on geometry, mesh, exterior, face_warp, lip_layers, mouth and
eyelids on those, warper on all:

* :mod:`.geometry` - similarity fits, signed areas, the face frame;
* :mod:`.contours` - the core vertices: landmarks plus Catmull-Rom contour midpoints;
* :mod:`.triangulation` - Delaunay with the contour edges recovered by flips;
* :mod:`.apron` - where the apron goes, a little outside the face;
* :mod:`.mesh` - :func:`build_mesh`: anchors and the fixed triangulation of a reference;
* :mod:`.exterior` - the smooth field beyond the face and the hand-over weight;
* :mod:`.face_warp` - the exact piecewise-affine face warp by lookup tables;
* :mod:`.raster` - pixel boxes, feathered masks, reusable scratch planes;
* :mod:`.lip_layers` - the reference's own mouth interior, carried by the lips;
* :mod:`.mouth` - the mouth interior (cavity, teeth band, the lip layers, the lip line);
* :mod:`.eyelids` - the shadow along a closing lid;
* :mod:`.warper` - :class:`LandmarkWarper`, the per-frame warp.
"""

from faceshot_backends.warp_engine.contours import CONTOURS, NUM_CORE
from faceshot_backends.warp_engine.geometry import similarity_transform
from faceshot_backends.warp_engine.mesh import WarpMesh, build_mesh
from faceshot_backends.warp_engine.warper import STABLE_POINTS, LandmarkWarper

__all__ = [
    "CONTOURS",
    "NUM_CORE",
    "STABLE_POINTS",
    "LandmarkWarper",
    "WarpMesh",
    "build_mesh",
    "similarity_transform",
]
