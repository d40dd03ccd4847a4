"""The stable gain rule: everything fixed by the reference and driving frame 0.

:func:`prepare` computes, once per call, the face and run frames of the reference and of driving
frame 0, the floored run radii, and per slot the regularised Eq. 6 gain below;
:func:`local_steps` applies the gain (or the run-size ratio) to each frame's local motion.  The
limits that make the result bounded are defined here too.

Stability by construction
-------------------------
``q0 * p_m / p0 = q0 + (p_m - p0) * (q0 / p0)``: Eq. 6 is an additive motion of the driving
displacement ``p_m - p0`` through a per-point, per-axis *gain* ``q0 / p0``, and only the gain can
explode (``p0 -> 0``) or flip sign (``q0``, ``p0`` on opposite sides of the run's axis).  We replace
the gain with the least-squares gain that maps the pair ``(|p0|, eps_dri)`` onto ``(|q0|,
eps_ref)``::

    g = (|q0| |p0| + eps_ref eps_dri) / (p0**2 + eps_dri**2),   eps = GAIN_EPS * run radius

which equals the paper's ratio (for same-sign coordinates) when ``|p0| >> eps_dri`` (the
correction is second order in ``eps / p0``), tends to the run-size ratio ``b_ref / b_dri`` as
``p0 -> 0`` (a closed driving mouth opening moves a closed character mouth in proportion to its
size, where the paper divides by zero), is exactly ``q0 / p0`` whenever the reference run is a
scaled copy of the driving run (then ``|q0| / b_ref = |p0| / b_dri``), is never negative (a point
moves the way its driving point moves, where the paper's ratio would reverse it) and never exceeds
``(1 / (2 GAIN_EPS) + 1) * b_ref / b_dri``.  The resulting displacement is then clipped per axis to
``MAX_POINT_STEP`` reference run radii, and the relative origin shift of a run to
``MAX_PART_SHIFT`` radii; neither clip engages for a real face (closing an eye, or opening a mouth
as far as it is wide, moves a lid or lip by at most about two run radii).

Direction matters.  The gain is what turns "the driving eye closed" into "the character's eye
closed" whatever their rest shapes: motion *toward* a run's axis (a lid toward the eye's corner
line, and on past it to the other lid) goes through it.  Motion *away* from the axis (a lip
rising off the mouth-corner line, a jaw dropping) has no such end point, and there the ratio of
the two rest shapes is arbitrary (a cat's arched upper lip over a human's flat one gives 4x,
flinging the lip into the nose when the human opens wide); so it goes through the run-size
ratio ``b_ref / b_dri`` instead.  Both factors are bounded and meet at zero displacement, so the
motion stays continuous.  For a reference that is a scaled copy of the driving face both are
the scale, and Eq. 6 is reproduced exactly.

The bound.  Write ``S = max(F_ref, MIN_SIZE)`` and ``A_m`` = reference face origin + the (scaled)
driving face-origin shift ``dO_m`` (just the reference origin when global motion is off).  Every run
radius satisfies ``b_ref_eff <= 2 S`` (run origins are midpoints of face points).  For a point
``x`` of a run with origin ``O``: ``|x - A_0| <= S``; turning the run moves it by at most
``2 |x - O| <= 4 S``; the origin shift is at most ``MAX_PART_SHIFT * 2 S``; the point motion at
most ``sqrt(2) * MAX_POINT_STEP * 2 S``; averaging shared points keeps the bound and the global
rotation about ``A_m`` does not change distances to it.  Hence for every finite input, every
output point of frame ``m`` lies within ``OFFSET_BOUND * S`` of ``A_m`` (about 19.5 face radii,
up to float32 rounding).  Only the global translation is unbounded, as in the paper: it copies the
driving head's pixel shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faceshot_core.retarget.frames import MIN_SIZE, radii, unit
from faceshot_core.retarget.runs import Tables
from faceshot_core.schema import JAW_ENDPOINTS

#: Regularisation of the point-motion gain, as a fraction of the run radius.  Below ~0.05 the
#: gain amplifies detector noise on points close to a run's axis; above ~0.2 it drifts from the
#: paper's ratio for run shapes unlike the driving one (round cartoon eyes vs narrow human eyes).
GAIN_EPS = 0.1
#: Largest local point displacement, per axis, in reference run radii.
MAX_POINT_STEP = 3.0
#: Largest relative origin shift of a run, in reference run radii.
MAX_PART_SHIFT = 3.0
#: The head-translation scale (reference face radius / driving face radius) is clipped to
#: ``[1 / MAX_TRANSLATION_SCALE, MAX_TRANSLATION_SCALE]`` so a collapsed face cannot amplify it.
MAX_TRANSLATION_SCALE = 16.0
#: Every output point lies within ``OFFSET_BOUND`` reference face radii of the moved face origin.
OFFSET_BOUND = 1.0 + 4.0 + 2.0 * MAX_PART_SHIFT + 2.0 * math.sqrt(2.0) * MAX_POINT_STEP


@dataclass(frozen=True)
class Static:
    """Everything that depends only on the reference and on driving frame 0.

    Complex numbers are points ``x + iy``.  ``R`` runs, ``S`` slots (see
    :class:`~faceshot_core.retarget.runs.Tables`).
    """

    t: Tables
    og_r: complex  # reference face origin
    move_scale: float  # head translation: reference face radius / driving face radius (or 1)
    og_d0: complex  # driving face origin, frame 0
    vg_d0_conj: complex  # conj of the driving face axis (endpoint difference), frame 0
    rest: np.ndarray  # [68] reference offsets from its face origin (unmoved points)
    v_d0_conj: np.ndarray  # [R] conj of driving run axes, frame 0
    u_d0: np.ndarray  # [R] driving run unit axes, frame 0
    o_rel_d0: np.ndarray  # [R] driving run origins relative to the face origin, frame 0
    shift_gain: np.ndarray  # [R] rotation to the reference face frame times b_ref / b_dri
    shift_limit: np.ndarray  # [R] MAX_PART_SHIFT * b_ref
    base_r: np.ndarray  # [R] reference run origin relative to its face origin
    p0: np.ndarray  # [S] driving local coordinates, frame 0
    gain: np.ndarray  # [S, 2] regularised Eq. 6 gain per axis (motion toward the run axis)
    size_ratio: np.ndarray  # [S, 1] b_ref / b_dri (motion away from the run axis)
    sigma: np.ndarray  # [S, 2] side of the run axis of the driving point at frame 0 (+1 / -1)
    step: np.ndarray  # [S, 2] MAX_POINT_STEP * b_ref, per axis
    axis_r: np.ndarray  # [S] reference run unit axis of each slot
    off_r: np.ndarray  # [S] reference offset of each slot from its run origin


def _translation_scale(face_r: float, face_d: float, head_translation: str) -> float:
    """Pixels of reference head motion per pixel of driving head motion."""
    if head_translation == "pixels":
        return 1.0
    ratio = max(face_r, MIN_SIZE) / max(face_d, MIN_SIZE)
    return min(max(ratio, 1.0 / MAX_TRANSLATION_SCALE), MAX_TRANSLATION_SCALE)


def prepare(zr: np.ndarray, zd0: np.ndarray, t: Tables, head_translation: str) -> Static:
    """The :class:`Static` of a reference ``zr`` and driving frame 0 ``zd0`` (complex ``[68]``)."""
    j0, j1 = JAW_ENDPOINTS
    og_r = complex(0.5 * (zr[j0] + zr[j1]))
    og_d0 = complex(0.5 * (zd0[j0] + zd0[j1]))
    vg_d0 = complex(zd0[j1] - zd0[j0])
    face_r = float(np.abs(zr - og_r).max())
    face_d = float(np.abs(zd0 - og_d0).max())
    # Driving face frame -> reference face frame (identity for two upright faces).
    transfer = complex(unit(zr[j1] - zr[j0]) * np.conj(unit(np.asarray(vg_d0))))

    o_r = 0.5 * (zr[t.o1] + zr[t.o2])  # [R]
    u_r = unit(zr[t.e2] - zr[t.e1])
    o_d0 = 0.5 * (zd0[t.o1] + zd0[t.o2])
    v_d0 = zd0[t.e2] - zd0[t.e1]
    u_d0 = unit(v_d0)

    # Run radii b (floored) from the frame-0 offsets to the run origins.
    off_r = zr[t.slot_point] - o_r[t.slot_run]  # [S]
    off_d0 = zd0[t.slot_point] - o_d0[t.slot_run]
    b_r = radii(off_r, t.run_starts, face_r)
    b_d = radii(off_d0, t.run_starts, face_d)

    # Stable Eq. 6 gain, in run-radius units: q_hat, p_hat <= 1.
    axis_r = u_r[t.slot_run]
    q0 = off_r * np.conj(axis_r)
    p0 = off_d0 * np.conj(u_d0[t.slot_run])
    rb_r, rb_d = b_r[t.slot_run, None], b_d[t.slot_run, None]
    q_hat = np.abs(q0.view(np.float64).reshape(-1, 2)) / rb_r  # [S, 2]
    p_hat = np.abs(p0.view(np.float64).reshape(-1, 2)) / rb_d
    eps2 = GAIN_EPS * GAIN_EPS
    gain = (q_hat * p_hat + eps2) / (p_hat * p_hat + eps2) * (rb_r / rb_d)

    return Static(
        t=t,
        og_r=og_r,
        move_scale=_translation_scale(face_r, face_d, head_translation),
        og_d0=og_d0,
        vg_d0_conj=vg_d0.conjugate(),
        rest=zr - og_r,
        v_d0_conj=np.conj(v_d0),
        u_d0=u_d0,
        o_rel_d0=o_d0 - og_d0,
        shift_gain=transfer * b_r / b_d,
        shift_limit=MAX_PART_SHIFT * b_r,
        base_r=o_r - og_r,
        p0=p0,
        gain=gain,
        size_ratio=rb_r / rb_d,
        sigma=np.where(p0.view(np.float64).reshape(-1, 2) >= 0, 1.0, -1.0),
        step=np.broadcast_to(MAX_POINT_STEP * rb_r, gain.shape).copy(),
        axis_r=axis_r,
        off_r=off_r,
    )


def local_steps(dxy: np.ndarray, st: Static) -> None:
    """Driving local displacements ``[B, S, 2]`` -> reference ones, in place.

    Per axis, motion that brings the driving point toward its run's axis (and on past it)
    goes through the Eq. 6 gain, so closing an eye maps onto closing; motion away from the axis
    through the run-size ratio, so opening a mouth or raising a lip is proportional to the
    character's part size instead of to the (arbitrary) ratio of the two rest shapes.
    """
    toward_axis = (dxy * st.sigma) < 0
    dxy *= np.where(toward_axis, st.gain, st.size_ratio)
