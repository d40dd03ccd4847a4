"""The public retargeting functions: per frame, the head motion, the runs' motion, the points.

:func:`retarget_points` checks and rescales the input, prepares what depends only on the
reference and driving frame 0 (:mod:`~faceshot_core.retarget.gain`), then moves every frame:
the global motion of the face frame (Eq. 5), each run's motion relative to it, and the point
motion in each run's local frame (the stable Eq. 6), as described in the package docstring.

Cost: every step is vectorised over frames, runs and points at once, in float64/complex128
(:mod:`~faceshot_core.retarget.runs` lays the runs out as flat slots, so there is no loop over
runs either).  Long sequences go through in blocks of :data:`BLOCK_FRAMES` frames only so
that the temporaries stay in cache.  See ``benchmarks/bench_retarget.py``: about 2-3 us per
frame on one core, against ~0.3 ms per frame for the plain per-point loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import FaceLandmarks, ImageSize, LandmarkSequence, check_image_size
from faceshot_core.retarget.constraints import sanitize_reference
from faceshot_core.retarget.frames import as_points, unit
from faceshot_core.retarget.gain import Static, local_steps, prepare
from faceshot_core.retarget.runs import resolve_parts, tables
from faceshot_core.retarget.shaping import (
    MAX_STRENGTH,
    Shaping,
    prepare_shaping,
    resolve_strength,
    shape_block,
)
from faceshot_core.schema import JAW_ENDPOINTS, NUM_POINTS

# Inputs whose magnitude exceeds 2**_RESCALE_EXP are scaled down (exactly) before the arithmetic.
# With sizes floored at MIN_SIZE (~2**-30) no product below then exceeds ~2**840.
_RESCALE_EXP = 400
_F32_MAX = float(np.finfo(np.float32).max)

PointsLike = np.ndarray | FaceLandmarks
SequenceLike = np.ndarray | LandmarkSequence


def _retarget_block(
    st: Static, zd: np.ndarray, head_motion: float, shaping: Shaping | None
) -> np.ndarray:
    """Retarget driving frames ``zd`` (complex ``[B, 68]``); complex ``[B, 68]`` result.

    All motion is measured against driving frame 0 held in ``st``; only ``shaping`` carries
    state from one block to the next (the widest driving openings so far).
    """
    t = st.t
    og_d = 0.5 * (zd[:, JAW_ENDPOINTS[0]] + zd[:, JAW_ENDPOINTS[1]])  # [B]
    w_g = unit((zd[:, JAW_ENDPOINTS[1]] - zd[:, JAW_ENDPOINTS[0]]) * st.vg_d0_conj)  # head turn
    if len(t.slot_point):
        o_d = zd[:, t.o1]
        o_d += zd[:, t.o2]
        o_d *= 0.5  # [B, R] driving run origins
        v_d = zd[:, t.e2]
        v_d -= zd[:, t.e1]
        w_p = unit(v_d * st.v_d0_conj)  # [B, R] run turn since frame 0

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
        local_steps(dxy, st)
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

    if shaping is not None:
        y = shape_block(shaping, y, st.rest, zd)

    if head_motion:
        if head_motion != 1.0:  # scale the head turn's angle and the head shift
            w_g = np.exp(1j * head_motion * np.angle(w_g))
        y *= w_g[:, None]
        og_d -= st.og_d0
        og_d *= st.move_scale * head_motion
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
    head_motion: float = 1.0,
    strength: Mapping[str, float] | None = None,
    anatomy: bool = True,
) -> np.ndarray:
    """Retarget the driving motion onto the reference; array in, float32 ``[M, 68, 2]`` out.

    ``reference`` is ``[68, 2]`` (or a :class:`FaceLandmarks`), ``driving`` ``[M, 68, 2]`` (or a
    :class:`LandmarkSequence`) with frame 0 the neutral pose.  ``parts`` (default: all five
    :data:`~faceshot_core.schema.PARTS`) selects the parts that follow the driving *local* motion;
    the others only follow the head.

    Head: ``head_motion`` scales the head's turn and shift (0 keeps the head still, 1 copies it;
    ``global_motion=False`` is the same as 0; the local motion is still measured relative to the
    driving head).  ``head_translation`` says how the driving head's shift carries over:
    ``"face"`` (default) scales it by the ratio of the face sizes (reference face radius /
    driving face radius, clipped to ``MAX_TRANSLATION_SCALE``), so a small face in a wide driving
    video moves a large character face proportionally; ``"pixels"`` copies it unscaled, as the
    paper does (it assumes both at 512x512 with faces of similar size, where the two agree).

    Expression: ``strength`` maps part names (or the aliases ``brows``, ``jaw``) to a factor on
    that part's motion (default 1; 0 freezes the part, 1.5 exaggerates it).  With ``anatomy``
    (the default) lids and lips follow the opening model of
    :mod:`~faceshot_core.retarget.expression` and every frame satisfies the rules of
    :mod:`faceshot_core.anatomy` (lips never cross, lids never invert, the chin stays below the
    mouth, parts keep their order), whatever the reference and the driving clip; a reference that
    breaks a rule itself is first repaired
    (:func:`~faceshot_core.retarget.constraints.sanitize_reference`).  ``anatomy=False`` gives
    the bare run motion (the paper's method made stable), for comparison.

    Output frame 0 equals the (repaired) reference as float32 exactly.  For any finite input the
    output is finite; with ``anatomy=False`` it lies within
    :data:`~faceshot_core.retarget.gain.OFFSET_BOUND` reference face radii of the moved face
    origin (see :mod:`faceshot_core.retarget.gain`), and the shaping moves points only within
    the same bound's reach plus the part sizes.  Raises :class:`InvalidLandmarksError` on wrong
    shapes, NaN/inf, unknown part names or strengths outside ``[0, 5]``.

    Long sequences are processed in blocks of :data:`BLOCK_FRAMES` frames, each fully vectorised,
    which keeps a block's temporaries in cache (about twice as fast as one pass over 100,000
    frames).
    """
    selected = resolve_parts(parts)
    strengths = resolve_strength(strength)
    if head_translation not in ("face", "pixels"):
        raise InvalidLandmarksError(
            f"head_translation must be 'face' or 'pixels', got {head_translation!r}"
        )
    if not (math.isfinite(head_motion) and 0.0 <= head_motion <= MAX_STRENGTH):
        raise InvalidLandmarksError(
            f"head_motion must be between 0 and {MAX_STRENGTH:g}, got {head_motion!r}"
        )
    if not global_motion:
        head_motion = 0.0
    ref, peak_r = as_points(reference, sequence=False, name="reference")
    dri, peak_d = as_points(driving, sequence=True, name="driving")

    # Exact power-of-two rescale of absurdly large inputs, so nothing below can overflow.
    peak = max(peak_r, peak_d)
    shift = max(0, math.frexp(peak)[1] - _RESCALE_EXP)
    if shift:
        ref = np.ldexp(ref, -shift)
        dri = np.ldexp(dri, -shift)
    if anatomy:
        ref = sanitize_reference(ref)
    limit = math.ldexp(_F32_MAX, -shift)  # saturate before undoing the rescale (no overflow)
    ref32 = np.ldexp(np.clip(ref, -limit, limit), shift).astype(np.float32)

    zr = np.ascontiguousarray(ref).view(np.complex128)[:, 0]  # [68]
    zd = np.ascontiguousarray(dri).view(np.complex128)[..., 0]  # [M, 68]
    st = prepare(zr, zd[0], tables(selected), head_translation)
    shaping = prepare_shaping(zr, zd[0], selected, strengths) if anatomy else None
    # |output| <= ~3 peak + OFFSET_BOUND * 2 peak < 64 peak: saturate only when that can overflow
    # float32, and before undoing the rescale, which could otherwise overflow float64.
    saturate = shift > 0 or 64.0 * peak > _F32_MAX

    result = np.empty(dri.shape, dtype=np.float32)
    for start in range(0, len(zd), BLOCK_FRAMES):
        block = _retarget_block(st, zd[start : start + BLOCK_FRAMES], head_motion, shaping)
        out = block.view(np.float64).reshape(len(block), NUM_POINTS, 2)
        if saturate:
            np.clip(out, -limit, limit, out=out)
        if shift:
            out = np.ldexp(out, shift)
        result[start : start + len(block)] = out
    result[0] = ref32  # frame 0 is the reference by definition (the arithmetic gives it to ~1e-13)
    return result


def repair_reference(reference: FaceLandmarks) -> FaceLandmarks:
    """The reference as the retargeting animates it: unchanged when it obeys the rules of
    :mod:`faceshot_core.anatomy`, else repaired
    (:func:`~faceshot_core.retarget.constraints.sanitize_reference`: swapped lip or lid labels
    put back, a slight crossing closed).

    Frame 0 of :func:`retarget` is this, so an animator must be given these landmarks as the
    reference's own, or it would move the image's lips at frame 0.
    """
    points, _ = as_points(reference, sequence=False, name="reference")
    fixed = sanitize_reference(points)
    if np.array_equal(fixed, points):
        return reference
    return FaceLandmarks(fixed.astype(np.float32), reference.image_size, source=reference.source)


def retarget(
    reference: PointsLike,
    driving: SequenceLike,
    *,
    parts: Iterable[str] | str | None = None,
    global_motion: bool = True,
    head_translation: str = "face",
    head_motion: float = 1.0,
    strength: Mapping[str, float] | None = None,
    anatomy: bool = True,
    image_size: ImageSize | None = None,
) -> LandmarkSequence:
    """Retarget ``driving`` onto ``reference`` and wrap the result as a :class:`LandmarkSequence`.

    The sequence lives in the reference's image (its ``image_size``; pass ``image_size`` when the
    reference is a bare array, else the driving sequence's size is used) and carries the driving
    ``fps`` and ``interpolated`` flags, since frame ``m`` still follows driving frame ``m``.  See
    :func:`retarget_points` for the other arguments.  Like every
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
        head_motion=head_motion,
        strength=strength,
        anatomy=anatomy,
    )
    if isinstance(driving, LandmarkSequence):
        fps, flags, source = driving.fps, driving.flags, driving.source
    else:
        fps, flags, source = None, None, "driving"
    return LandmarkSequence(points, size, fps, flags, source=f"retargeted from {source}")
