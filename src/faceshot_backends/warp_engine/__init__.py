"""CPU landmark-driven warp engine: a piecewise-affine backward warp of one reference image.

The built-in ``warp`` backend animates a character by moving the pixels of its reference image
so that the reference's 68 landmarks land on each frame's reposed landmarks.  Everything
expensive is decided once per reference (:class:`LandmarkWarper`), so that a frame costs a few
milliseconds:

* **Mesh.**  The 68 landmarks, smooth contour midpoints on the eyes and inner lips, head anchors
  that follow the head's similarity motion, and fixed ring and border anchors, triangulated once
  on the reference with the facial contours kept as edges, so the topology never changes and
  an eye or the mouth can close to nothing and open again.
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

One module per job.  Imports go one way: geometry, contours and raster know nothing of the
others, triangulation builds on geometry, mesh, mouth and eyelids on those, warper on all:

* :mod:`.geometry` - similarity fits, signed areas, the face frame;
* :mod:`.contours` - the core vertices: landmarks plus Catmull-Rom contour midpoints;
* :mod:`.triangulation` - Delaunay with the contour edges recovered by flips;
* :mod:`.mesh` - :func:`build_mesh`: anchors and the fixed triangulation of a reference;
* :mod:`.raster` - pixel boxes and feathered masks;
* :mod:`.mouth` - the mouth interior (cavity, teeth, the reference's own interior);
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
