"""Coordinate-based landmark retargeting (FaceShot Sec. 3.2, Appendix B), stable by construction.

Given the reference (character) landmarks ``[68, 2]`` and a driving sequence ``[M, 68, 2]``
whose frame 0 is the neutral pose, produce ``[M, 68, 2]`` reference landmarks that copy the
driving motion.  Output frame 0 is the reference itself.

The method
----------
A *coordinate system* of a run of points is an origin ``O`` (midpoint of the run's two endpoints
``e1``, ``e2``) and an angle ``theta`` (direction of ``e2 - e1``).  Runs are the thirteen
:data:`~faceshot_core.schema.SUBPARTS`; the lower nose takes its origin from the nose bridge.

1. **Global motion.**  The face-boundary endpoints (0, 16) give the face frame.  Between driving
   frame 0 and frame ``m`` it moves by ``dO`` and turns by ``dtheta``; the reference face is
   turned by ``dtheta`` about its own face origin and shifted by ``dO`` (Eq. 5).  The paper copies
   ``dO`` in pixels (both images at 512x512); by default we scale it by the ratio of the face
   radii, which agrees with the paper for faces of similar size and keeps a small driving face
   from barely moving a large character (``head_translation="pixels"`` restores the paper).
2. **Relative motion** of each run: its own origin/angle change *minus the global one*.  We
   subtract the global motion by first undoing it on the driving frame (turning it back about the
   driving face origin), so a head turn does not leak into the parts twice.  The remaining
   origin shift is expressed in the driving face frame, turned into the reference face frame (a
   tilted character raises its brows along its own "up") and scaled by ``b_ref / b_dri``, where
   ``b`` of a run is its **radius**: the largest distance from the run's origin to any of the
   run's points, in that face's frame 0 (see "Sizes" below).  The run turns about its origin by
   the remaining angle.
3. **Point motion** (Eq. 6) in the run's local frame: the paper moves reference coordinate ``q``
   of point ``i`` to ``q0 * p_m / p0`` per axis, ``p`` being the driving point's local coordinate.

The paper's Eq. 6 divides by ``p0`` and can explode or reverse a motion; here it is replaced by a
bounded gain that agrees with it on real faces, so for every finite input the output is finite
and within a fixed number of face radii of the moved face origin.

4. **Shaping** (on by default, ``anatomy=True``): part strengths scale each part's motion; the
   lids and lips take their heights from an opening model in the character's own proportions
   (a full blink closes any eye, an opening mouth opens by the character's mouth size and takes
   the chin with it, an open reference mouth closes once the driving mouth has opened and
   closed); then every frame is projected onto the rules of :mod:`faceshot_core.anatomy`, so
   lips never cross, lids never invert, the chin stays below the mouth and parts keep their
   order, for any reference and driving clip.  The head motion (step 1) can be scaled
   (``head_motion``, 0 keeps the head still).

One module per job, imported one way (frames, runs <- gain, expression, constraints <- shaping
<- motion):

* :mod:`.frames` - points as complex numbers, input checks, unit axes and the size floors that
  keep degenerate input finite;
* :mod:`.runs` - the selected parts' runs as flat "slots", and the points two runs share;
* :mod:`.gain` - the stable gain rule (stability by construction, why direction matters, the
  output bound) and everything fixed by the reference and driving frame 0;
* :mod:`.expression` - the opening model of lids and lips, and the chin below the lower lip;
* :mod:`.constraints` - the projection onto the anatomical rules, and the repair of a reference
  that breaks them (swapped lip or lid annotations);
* :mod:`.shaping` - strengths, the opening model and the projection, per block of frames;
* :mod:`.motion` - :func:`retarget_points` and :func:`retarget`: the per-frame motion, in
  blocks of frames.
"""

from faceshot_core.retarget.frames import MIN_RUN_FRACTION, MIN_SIZE
from faceshot_core.retarget.gain import (
    GAIN_EPS,
    MAX_PART_SHIFT,
    MAX_POINT_STEP,
    MAX_TRANSLATION_SCALE,
    OFFSET_BOUND,
)
from faceshot_core.retarget.motion import (
    BLOCK_FRAMES,
    PointsLike,
    SequenceLike,
    repair_reference,
    retarget,
    retarget_points,
)
from faceshot_core.retarget.runs import resolve_parts
from faceshot_core.retarget.shaping import MAX_STRENGTH, PART_ALIASES, resolve_strength

__all__ = [
    "BLOCK_FRAMES",
    "GAIN_EPS",
    "MAX_PART_SHIFT",
    "MAX_POINT_STEP",
    "MAX_STRENGTH",
    "MAX_TRANSLATION_SCALE",
    "MIN_RUN_FRACTION",
    "MIN_SIZE",
    "OFFSET_BOUND",
    "PART_ALIASES",
    "PointsLike",
    "SequenceLike",
    "repair_reference",
    "resolve_parts",
    "resolve_strength",
    "retarget",
    "retarget_points",
]
