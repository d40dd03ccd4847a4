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

Sizes and degenerate input.  Every radius is floored: ``b_eff = max(b, MIN_RUN_FRACTION * F,
MIN_SIZE)`` with ``F`` the face radius (largest distance of the 68 points from the face origin),
so a collapsed run borrows a size from the face and a collapsed face a tiny absolute size; all
divisions are by floored sizes.  Angles come from ``atan2``-style unit vectors with a zero vector
meaning "angle 0", and an angle *change* is the angle of ``v_m * conj(v_0)``, which is 0 when the
endpoints coincide in either frame; so coincident endpoints never produce NaN, and at worst an
arbitrary but harmless rotation (rotations are isometries).  Inputs beyond ``2**400`` are scaled
down by a power of two before the arithmetic and back afterwards (exact), so no intermediate can
overflow, and the float32 result saturates at the float32 range instead of becoming ``inf``.

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

Points shared by two runs (eye and lip corners 36, 39, 42, 45, 48, 54, 60, 64) are the
endpoints of both runs, whose frames coincide up to a half turn; each run proposes a position and
the output is their mean, which keeps the two lids (or lips) symmetric.

Cost: every step is vectorised over frames, runs and points at once, in float64/complex128:
points are complex numbers, rotations are products with unit complex numbers (no trigonometric
function is evaluated), and the 13 runs are laid out as 76 flat "slots" so that there is no loop
over runs either.  Long sequences go through in blocks of :data:`BLOCK_FRAMES` frames only so
that the temporaries stay in cache.  See ``benchmarks/bench_retarget.py``: about 2-3 us per frame
on one core, against ~0.3 ms per frame for the plain per-point loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import FaceLandmarks, ImageSize, LandmarkSequence, check_image_size
from faceshot_core.schema import JAW_ENDPOINTS, NUM_POINTS, PARTS, SUBPARTS, SUBPARTS_BY_NAME

__all__ = [
    "GAIN_EPS",
    "MAX_PART_SHIFT",
    "MAX_POINT_STEP",
    "MAX_TRANSLATION_SCALE",
    "MIN_RUN_FRACTION",
    "MIN_SIZE",
    "OFFSET_BOUND",
    "resolve_parts",
    "retarget",
    "retarget_points",
]

#: Regularisation of the point-motion gain, as a fraction of the run radius.  Below ~0.05 the
#: gain amplifies detector noise on points close to a run's axis; above ~0.2 it drifts from the
#: paper's ratio for run shapes unlike the driving one (round cartoon eyes vs narrow human eyes).
GAIN_EPS = 0.1
#: Largest local point displacement, per axis, in reference run radii.
MAX_POINT_STEP = 3.0
#: Largest relative origin shift of a run, in reference run radii.
MAX_PART_SHIFT = 3.0
#: A run's radius is at least this fraction of the face radius (collapsed runs).
MIN_RUN_FRACTION = 0.05
#: Absolute floor on every size, in input units (a collapsed face).
MIN_SIZE = 1e-9
#: The head-translation scale (reference face radius / driving face radius) is clipped to
#: ``[1 / MAX_TRANSLATION_SCALE, MAX_TRANSLATION_SCALE]`` so a collapsed face cannot amplify it.
MAX_TRANSLATION_SCALE = 16.0
#: Every output point lies within ``OFFSET_BOUND`` reference face radii of the moved face origin.
OFFSET_BOUND = 1.0 + 4.0 + 2.0 * MAX_PART_SHIFT + 2.0 * math.sqrt(2.0) * MAX_POINT_STEP

# Inputs whose magnitude exceeds 2**_RESCALE_EXP are scaled down (exactly) before the arithmetic.
# With sizes floored at MIN_SIZE (~2**-30) no product below then exceeds ~2**840.
_RESCALE_EXP = 400
_F32_MAX = float(np.finfo(np.float32).max)

PointsLike = np.ndarray | FaceLandmarks
SequenceLike = np.ndarray | LandmarkSequence


def resolve_parts(parts: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate part names and return them in :data:`~faceshot_core.schema.PARTS` order.

    ``None`` means all five parts; a single string is one part name.  Unknown names raise
    :class:`~faceshot_core.errors.InvalidLandmarksError` listing the valid ones, because a typo
    would otherwise silently freeze that part.
    """
    if parts is None:
        return tuple(PARTS)
    names = [parts] if isinstance(parts, str) else list(parts)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        raise InvalidLandmarksError(
            f"unknown facial part(s) {', '.join(map(repr, unknown))}; "
            f"valid parts are: {', '.join(PARTS)}"
        )
    return tuple(p for p in PARTS if p in names)


@dataclass(frozen=True)
class _Tables:
    """Index tables for the runs of the selected parts, laid out as flat "slots".

    A slot is one (run, point) pair; slots of a run are contiguous.  Runs are in
    :data:`SUBPARTS` order; ``run_starts`` index the first slot of each run.
    """

    e1: np.ndarray  # [R] first endpoint (defines the angle)
    e2: np.ndarray  # [R] last endpoint
    o1: np.ndarray  # [R] endpoints defining the origin (the nose bridge's for the lower nose)
    o2: np.ndarray  # [R]
    slot_point: np.ndarray  # [S] landmark index of each slot
    slot_run: np.ndarray  # [S] run index of each slot
    run_starts: np.ndarray  # [R]
    first_slot: np.ndarray  # [P] one slot for each point covered by the selected runs
    first_point: np.ndarray  # [P] its landmark index
    extra: tuple[tuple[np.ndarray, np.ndarray], ...]  # layers of (slots, points), no repeats
    shared_point: np.ndarray  # [Y] points covered more than once
    shared_count: np.ndarray  # [Y] how many runs cover each
    covers_all: bool  # first_point is exactly 0..67


@lru_cache(maxsize=64)
def _tables(parts: tuple[str, ...]) -> _Tables:
    runs = [s for s in SUBPARTS if s.part in parts]
    e1: list[int] = []
    e2: list[int] = []
    o1: list[int] = []
    o2: list[int] = []
    slot_point: list[int] = []
    slot_run: list[int] = []
    run_starts: list[int] = []
    for r, sub in enumerate(runs):
        origin = SUBPARTS_BY_NAME[sub.origin_from] if sub.origin_from else sub
        e1.append(sub.endpoints[0])
        e2.append(sub.endpoints[1])
        o1.append(origin.endpoints[0])
        o2.append(origin.endpoints[1])
        run_starts.append(len(slot_point))
        slot_point.extend(sub.indices)
        slot_run.extend([r] * len(sub.indices))
    # The k-th slot (k >= 1) of a point goes to layer k - 1, so that no layer repeats a point and
    # a fancy-indexed ``+=`` per layer is exact (the iBUG runs share points pairwise: one layer).
    seen: dict[int, int] = {}
    first_slot: list[int] = []
    first_point: list[int] = []
    layers: list[tuple[list[int], list[int]]] = []
    for s, i in sorted(enumerate(slot_point), key=lambda si: si[1]):  # by point index
        k = seen.get(i, 0)
        if k == 0:
            first_slot.append(s)
            first_point.append(i)
        else:
            if len(layers) < k:
                layers.append(([], []))
            layers[k - 1][0].append(s)
            layers[k - 1][1].append(i)
        seen[i] = k + 1
    shared = sorted(i for i, n in seen.items() if n > 1)

    def arr(values: list[int]) -> np.ndarray:
        return np.asarray(values, dtype=np.intp)

    return _Tables(
        arr(e1),
        arr(e2),
        arr(o1),
        arr(o2),
        arr(slot_point),
        arr(slot_run),
        arr(run_starts),
        arr(first_slot),
        arr(first_point),
        tuple((arr(slots), arr(points)) for slots, points in layers),
        arr(shared),
        np.asarray([seen[i] for i in shared], dtype=np.float64),
        first_point == list(range(NUM_POINTS)),
    )


def _as_points(value: object, *, sequence: bool, name: str) -> tuple[np.ndarray, float]:
    """Points as float64 ``[68, 2]`` / ``[M, 68, 2]`` and their largest magnitude.

    Wrong shapes and NaN/inf raise :class:`InvalidLandmarksError`.
    """
    if isinstance(value, FaceLandmarks | LandmarkSequence):
        value = value.points
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidLandmarksError(f"{name}: points are not numeric ({exc})") from exc
    ndim = 3 if sequence else 2
    if arr.ndim != ndim or arr.shape[-2:] != (NUM_POINTS, 2) or arr.size == 0:
        expected = "[M, 68, 2] with M >= 1" if sequence else "[68, 2]"
        raise InvalidLandmarksError(f"{name}: expected points {expected}, got {list(arr.shape)}")
    lo, hi = float(arr.min()), float(arr.max())  # NaN propagates; two passes, no temporary
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidLandmarksError(f"{name}: NaN or infinite coordinate")
    return arr, max(-lo, hi)


def _unit(z: np.ndarray) -> np.ndarray:
    """``z / |z|``, with 1 (angle 0) where ``z`` is 0: the convention ``atan2(0, 0) = 0``.

    Real and imaginary parts are divided separately: ``|re|, |im| <= |z|`` so neither quotient
    can overflow, even for subnormal ``z`` (numpy's complex division can).
    """
    z = np.asarray(z, dtype=np.complex128)
    zero = z == 0
    mag = np.where(zero, 1.0, np.abs(z))
    out = np.empty_like(z)
    out.real = np.where(zero, 1.0, z.real / mag)
    out.imag = z.imag / mag
    return out


def _radii(offsets: np.ndarray, run_starts: np.ndarray, face_radius: float) -> np.ndarray:
    """Floored radius of each run from the complex offsets of its slots to its origin."""
    radius = np.maximum.reduceat(np.abs(offsets), run_starts)
    return np.maximum(radius, max(MIN_RUN_FRACTION * face_radius, MIN_SIZE))


@dataclass(frozen=True)
class _Static:
    """Everything that depends only on the reference and on driving frame 0.

    Complex numbers are points ``x + iy``.  ``R`` runs, ``S`` slots (see :class:`_Tables`).
    """

    t: _Tables
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


def _prepare(zr: np.ndarray, zd0: np.ndarray, t: _Tables, head_translation: str) -> _Static:
    j0, j1 = JAW_ENDPOINTS
    og_r = complex(0.5 * (zr[j0] + zr[j1]))
    og_d0 = complex(0.5 * (zd0[j0] + zd0[j1]))
    vg_d0 = complex(zd0[j1] - zd0[j0])
    face_r = float(np.abs(zr - og_r).max())
    face_d = float(np.abs(zd0 - og_d0).max())
    # Driving face frame -> reference face frame (identity for two upright faces).
    transfer = complex(_unit(zr[j1] - zr[j0]) * np.conj(_unit(np.asarray(vg_d0))))

    o_r = 0.5 * (zr[t.o1] + zr[t.o2])  # [R]
    u_r = _unit(zr[t.e2] - zr[t.e1])
    o_d0 = 0.5 * (zd0[t.o1] + zd0[t.o2])
    v_d0 = zd0[t.e2] - zd0[t.e1]
    u_d0 = _unit(v_d0)

    # Run radii b (floored) from the frame-0 offsets to the run origins.
    off_r = zr[t.slot_point] - o_r[t.slot_run]  # [S]
    off_d0 = zd0[t.slot_point] - o_d0[t.slot_run]
    b_r = _radii(off_r, t.run_starts, face_r)
    b_d = _radii(off_d0, t.run_starts, face_d)

    # Stable Eq. 6 gain, in run-radius units: q_hat, p_hat <= 1.
    axis_r = u_r[t.slot_run]
    q0 = off_r * np.conj(axis_r)
    p0 = off_d0 * np.conj(u_d0[t.slot_run])
    rb_r, rb_d = b_r[t.slot_run, None], b_d[t.slot_run, None]
    q_hat = np.abs(q0.view(np.float64).reshape(-1, 2)) / rb_r  # [S, 2]
    p_hat = np.abs(p0.view(np.float64).reshape(-1, 2)) / rb_d
    eps2 = GAIN_EPS * GAIN_EPS
    gain = (q_hat * p_hat + eps2) / (p_hat * p_hat + eps2) * (rb_r / rb_d)

    return _Static(
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


def _local_steps(dxy: np.ndarray, st: _Static) -> None:
    """Driving local displacements ``[B, S, 2]`` -> reference ones, in place.

    Per axis, motion that brings the driving point toward its run's axis (and on past it)
    goes through the Eq. 6 gain, so closing an eye maps onto closing; motion away from the axis
    through the run-size ratio, so opening a mouth or raising a lip is proportional to the
    character's part size instead of to the (arbitrary) ratio of the two rest shapes.
    """
    toward_axis = (dxy * st.sigma) < 0
    dxy *= np.where(toward_axis, st.gain, st.size_ratio)


def _retarget_block(st: _Static, zd: np.ndarray, global_motion: bool) -> np.ndarray:
    """Retarget driving frames ``zd`` (complex ``[B, 68]``); complex ``[B, 68]`` result.

    All motion is measured against driving frame 0 held in ``st``, so blocks are independent.
    """
    t = st.t
    og_d = 0.5 * (zd[:, JAW_ENDPOINTS[0]] + zd[:, JAW_ENDPOINTS[1]])  # [B]
    w_g = _unit((zd[:, JAW_ENDPOINTS[1]] - zd[:, JAW_ENDPOINTS[0]]) * st.vg_d0_conj)  # head turn
    if len(t.slot_point):
        o_d = zd[:, t.o1]
        o_d += zd[:, t.o2]
        o_d *= 0.5  # [B, R] driving run origins
        v_d = zd[:, t.e2]
        v_d -= zd[:, t.e1]
        w_p = _unit(v_d * st.v_d0_conj)  # [B, R] run turn since frame 0

        # Relative motion: undo the head motion on the run origin, compare with frame 0, map the
        # shift into the reference face frame, scale by b_ref / b_dri, cap its length.
        w_g_inv = np.conj(w_g)[:, None]
        shift = (o_d - og_d[:, None]) * w_g_inv
        shift -= st.o_rel_d0
        shift *= st.shift_gain
        shift *= st.shift_limit / np.maximum(np.abs(shift), st.shift_limit)
        shift += st.base_r  # run origin relative to the reference face origin
        turn = w_p * w_g_inv  # [B, R]

        # Point motion (stable Eq. 6) in run-local coordinates, in place on one [B, S] array.
        d = np.take(zd, t.slot_point, axis=1)
        d -= np.take(o_d, t.slot_run, axis=1)
        d *= np.take(np.conj(w_p * st.u_d0), t.slot_run, axis=1)  # driving run axes at frame m
        d -= st.p0  # dp: local displacement since frame 0
        dxy = d.view(np.float64).reshape(*d.shape, 2)
        _local_steps(dxy, st)
        np.minimum(dxy, st.step, out=dxy)
        np.maximum(dxy, -st.step, out=dxy)
        d *= st.axis_r  # back to image axes of the reference run (frame 0)
        d += st.off_r
        d *= np.take(turn, t.slot_run, axis=1)
        d += np.take(shift, t.slot_run, axis=1)

        # Slots to points; points in two runs get the mean of both proposals.
        if t.covers_all:
            y = np.take(d, t.first_slot, axis=1)  # first_point is then 0..67 in order
        else:
            y = np.empty_like(zd)  # offsets from the reference face origin
            y[:] = st.rest
            y[:, t.first_point] = d[:, t.first_slot]
        for slots, points in t.extra:
            y[:, points] += d[:, slots]
        if len(t.shared_point):
            y[:, t.shared_point] /= t.shared_count
    else:
        y = np.empty_like(zd)
        y[:] = st.rest

    if global_motion:
        y *= w_g[:, None]
        og_d -= st.og_d0
        og_d *= st.move_scale
        og_d += st.og_r
        y += og_d[:, None]
    else:
        y += st.og_r
    return y


#: Frames per block: the working set of one block (a few [B, 76] complex arrays) stays in cache.
BLOCK_FRAMES = 1024


def retarget_points(
    reference: PointsLike,
    driving: SequenceLike,
    *,
    parts: Iterable[str] | str | None = None,
    global_motion: bool = True,
    head_translation: str = "face",
) -> np.ndarray:
    """Retarget the driving motion onto the reference; array in, float32 ``[M, 68, 2]`` out.

    ``reference`` is ``[68, 2]`` (or a :class:`FaceLandmarks`), ``driving`` ``[M, 68, 2]`` (or a
    :class:`LandmarkSequence`) with frame 0 the neutral pose.  ``parts`` (default: all five
    :data:`~faceshot_core.schema.PARTS`) selects the parts that follow the driving *local* motion;
    the others only follow the head.  ``global_motion=False`` keeps the head still (expression
    transfer only: the local motion is still measured relative to the driving head).
    ``head_translation`` says how the driving head's shift carries over: ``"face"`` (default)
    scales it by the ratio of the face sizes (reference face radius / driving face radius,
    clipped to ``MAX_TRANSLATION_SCALE``), so a small face in a wide driving video moves a
    large character face proportionally; ``"pixels"`` copies it unscaled, as the paper does
    (it assumes both at 512x512 with faces of similar size, where the two agree).

    Output frame 0 equals the reference (as float32) exactly.  For any finite input the output is
    finite and within :data:`OFFSET_BOUND` reference face radii of the moved face origin (see the
    module docstring).  Raises :class:`InvalidLandmarksError` on wrong shapes, NaN/inf or unknown
    part names.

    Long sequences are processed in blocks of :data:`BLOCK_FRAMES` frames, each fully vectorised:
    frames are independent given frame 0, and a block's temporaries fit in cache, which is about
    twice as fast as one pass over 100,000 frames.
    """
    selected = resolve_parts(parts)
    if head_translation not in ("face", "pixels"):
        raise InvalidLandmarksError(
            f"head_translation must be 'face' or 'pixels', got {head_translation!r}"
        )
    ref, peak_r = _as_points(reference, sequence=False, name="reference")
    dri, peak_d = _as_points(driving, sequence=True, name="driving")
    ref32 = np.clip(ref, -_F32_MAX, _F32_MAX).astype(np.float32)

    # Exact power-of-two rescale of absurdly large inputs, so nothing below can overflow.
    peak = max(peak_r, peak_d)
    shift = max(0, math.frexp(peak)[1] - _RESCALE_EXP)
    if shift:
        ref = np.ldexp(ref, -shift)
        dri = np.ldexp(dri, -shift)

    zr = np.ascontiguousarray(ref).view(np.complex128)[:, 0]  # [68]
    zd = np.ascontiguousarray(dri).view(np.complex128)[..., 0]  # [M, 68]
    st = _prepare(zr, zd[0], _tables(selected), head_translation)
    # |output| <= ~3 peak + OFFSET_BOUND * 2 peak < 64 peak: saturate only when that can overflow
    # float32, and before undoing the rescale, which could otherwise overflow float64.
    saturate = shift > 0 or 64.0 * peak > _F32_MAX
    limit = math.ldexp(_F32_MAX, -shift)

    result = np.empty(dri.shape, dtype=np.float32)
    for start in range(0, len(zd), BLOCK_FRAMES):
        block = _retarget_block(st, zd[start : start + BLOCK_FRAMES], global_motion)
        out = block.view(np.float64).reshape(len(block), NUM_POINTS, 2)
        if saturate:
            np.clip(out, -limit, limit, out=out)
        if shift:
            out = np.ldexp(out, shift)
        result[start : start + len(block)] = out
    result[0] = ref32  # frame 0 is the reference by definition (the arithmetic gives it to ~1e-13)
    return result


def retarget(
    reference: PointsLike,
    driving: SequenceLike,
    *,
    parts: Iterable[str] | str | None = None,
    global_motion: bool = True,
    head_translation: str = "face",
    image_size: ImageSize | None = None,
) -> LandmarkSequence:
    """Retarget ``driving`` onto ``reference`` and wrap the result as a :class:`LandmarkSequence`.

    The sequence lives in the reference's image (its ``image_size``; pass ``image_size`` when the
    reference is a bare array, else the driving sequence's size is used) and carries the driving
    ``fps`` and ``interpolated`` flags, since frame ``m`` still follows driving frame ``m``.  See
    :func:`retarget_points` for ``parts``, ``global_motion`` and ``head_translation``.  Like every
    :class:`LandmarkSequence`, it refuses points far outside the image (for instance when the
    driving head moves a reference face placed near the border out of frame).
    """
    if isinstance(reference, FaceLandmarks):
        size: ImageSize = reference.image_size
    elif image_size is not None:
        size = check_image_size(image_size, "retarget")
    elif isinstance(driving, LandmarkSequence):
        size = driving.image_size
    else:
        raise InvalidLandmarksError(
            "retarget: the reference is a bare array; pass image_size=(width, height)"
        )
    points = retarget_points(
        reference,
        driving,
        parts=parts,
        global_motion=global_motion,
        head_translation=head_translation,
    )
    if isinstance(driving, LandmarkSequence):
        fps, flags, source = driving.fps, driving.flags, driving.source
    else:
        fps, flags, source = None, None, "driving"
    return LandmarkSequence(points, size, fps, flags, source=f"retargeted from {source}")
