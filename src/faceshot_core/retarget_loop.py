"""Reference implementation of :mod:`faceshot_core.retarget`: plain Python, per frame, per point.

For tests and benchmarks only (``tests/test_retarget.py``, ``benchmarks/bench_retarget.py``);
faceshot itself never calls it, and it is about 100x slower than
:func:`faceshot_core.retarget.retarget_points`.  Being the test oracle and the benchmark
baseline, it is written the way the method is stated rather than the way it runs fast: explicit
angles (``math.atan2``), 2x2 rotations with ``cos``/``sin``, one frame, one run and one point at
a time, and no numpy in the arithmetic.  It shares only the tuning constants and the schema with
the vectorised module, never its code, so the two agree only if both follow the documented
algorithm.  Unlike the vectorised version it does not overwrite frame 0 with the reference: the
arithmetic has to give it back by itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from faceshot_core.retarget import (
    GAIN_EPS,
    MAX_PART_SHIFT,
    MAX_POINT_STEP,
    MAX_TRANSLATION_SCALE,
    MIN_RUN_FRACTION,
    MIN_SIZE,
    resolve_parts,
)
from faceshot_core.schema import JAW_ENDPOINTS, SUBPARTS, SUBPARTS_BY_NAME

Point = tuple[float, float]
_F32_MAX = float(np.finfo(np.float32).max)


def _atan2(y: float, x: float) -> float:
    """``math.atan2`` with the angle of the zero vector pinned to 0.

    Plain ``atan2`` returns +-pi for ``(+-0.0, -0.0)``: signed zeros would turn a degenerate run
    by half a turn.
    """
    return 0.0 if x == 0.0 and y == 0.0 else math.atan2(y, x)


def _angle(v: Point) -> float:
    """Direction of ``v``; a zero vector points along +x."""
    return _atan2(v[1], v[0])


def _angle_change(v0: Point, vm: Point) -> float:
    """Signed angle from ``v0`` to ``vm``; 0 when either is the zero vector."""
    cross = v0[0] * vm[1] - v0[1] * vm[0]
    dot = v0[0] * vm[0] + v0[1] * vm[1]
    return _atan2(cross, dot)


def _rotate(v: Point, angle: float) -> Point:
    c, s = math.cos(angle), math.sin(angle)
    return (c * v[0] - s * v[1], s * v[0] + c * v[1])


def _sub(a: Point, b: Point) -> Point:
    return (a[0] - b[0], a[1] - b[1])


def _add(a: Point, b: Point) -> Point:
    return (a[0] + b[0], a[1] + b[1])


def _mid(a: Point, b: Point) -> Point:
    return (0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1]))


def _clip(x: float, limit: float) -> float:
    return min(max(x, -limit), limit)


def _face_radius(face: Sequence[Point], origin: Point) -> float:
    return max(math.hypot(*_sub(p, origin)) for p in face)


def _gain(q0: float, p0: float, b_ref: float, b_dri: float) -> float:
    """The regularised Eq. 6 gain ``(|q0||p0| + e_r e_d) / (p0^2 + e_d^2)``, ``e = GAIN_EPS b``.

    Evaluated in run-radius units (``q0 / b_ref``, ``p0 / b_dri``), which is the same number
    and keeps the squares small whatever the pixel scale.
    """
    q, p, e = abs(q0) / b_ref, abs(p0) / b_dri, GAIN_EPS
    return (q * p + e * e) / (p * p + e * e) * (b_ref / b_dri)


def _local_step(t: float, p0: float, gain: float, size_ratio: float) -> float:
    """Reference displacement for a driving displacement ``t`` of a local coordinate ``p0``.

    Motion toward the run's axis (and on past it) goes through the Eq. 6 gain; motion away
    from the axis through the run-size ratio.
    """
    toward_axis = t * (1.0 if p0 >= 0 else -1.0) < 0
    return t * (gain if toward_axis else size_ratio)


def retarget_loop(
    ref: np.ndarray,
    dri: np.ndarray,
    parts: Iterable[str] | str | None = None,
    global_motion: bool = True,
    head_translation: str = "face",
) -> np.ndarray:
    """Retarget ``dri`` ``[M, 68, 2]`` onto ``ref`` ``[68, 2]``; float32 ``[M, 68, 2]``."""
    selected = resolve_parts(parts)
    ref_a = np.asarray(ref, dtype=np.float64)
    dri_a = np.asarray(dri, dtype=np.float64)
    peak = max(float(np.abs(ref_a).max()), float(np.abs(dri_a).max()))
    shift = max(0, math.frexp(peak)[1] - 400)
    R: list[Point] = [(math.ldexp(x, -shift), math.ldexp(y, -shift)) for x, y in ref_a.tolist()]
    D: list[list[Point]] = [
        [(math.ldexp(x, -shift), math.ldexp(y, -shift)) for x, y in frame]
        for frame in dri_a.tolist()
    ]
    j0, j1 = JAW_ENDPOINTS
    runs = [s for s in SUBPARTS if s.part in selected]

    og_r = _mid(R[j0], R[j1])
    og_d0 = _mid(D[0][j0], D[0][j1])
    vg_d0 = _sub(D[0][j1], D[0][j0])
    face_r = _face_radius(R, og_r)
    face_d = _face_radius(D[0], og_d0)
    transfer = _angle(_sub(R[j1], R[j0])) - _angle(vg_d0)
    move_scale = 1.0
    if head_translation == "face":
        move_scale = max(face_r, MIN_SIZE) / max(face_d, MIN_SIZE)
        move_scale = min(max(move_scale, 1.0 / MAX_TRANSLATION_SCALE), MAX_TRANSLATION_SCALE)

    # Per-run frame-0 quantities of the reference and of driving frame 0.
    static = []
    for sub in runs:
        org = SUBPARTS_BY_NAME[sub.origin_from] if sub.origin_from else sub
        e1, e2 = sub.endpoints
        o1, o2 = org.endpoints
        o_r = _mid(R[o1], R[o2])
        th_r = _angle(_sub(R[e2], R[e1]))
        o_d0 = _mid(D[0][o1], D[0][o2])
        v_d0 = _sub(D[0][e2], D[0][e1])
        th_d0 = _angle(v_d0)
        floor_r = max(MIN_RUN_FRACTION * face_r, MIN_SIZE)
        floor_d = max(MIN_RUN_FRACTION * face_d, MIN_SIZE)
        b_r = max([math.hypot(*_sub(R[i], o_r)) for i in sub.indices] + [floor_r])
        b_d = max([math.hypot(*_sub(D[0][i], o_d0)) for i in sub.indices] + [floor_d])
        q0 = {i: _rotate(_sub(R[i], o_r), -th_r) for i in sub.indices}
        p0 = {i: _rotate(_sub(D[0][i], o_d0), -th_d0) for i in sub.indices}
        static.append((sub, (o1, o2), o_r, th_r, o_d0, v_d0, th_d0, b_r, b_d, q0, p0))

    out = np.empty(dri_a.shape, dtype=np.float64)
    for m, frame in enumerate(D):
        og_d = _mid(frame[j0], frame[j1])
        d_theta_g = _angle_change(vg_d0, _sub(frame[j1], frame[j0]))
        proposals: dict[int, list[Point]] = {}
        for sub, (o1, o2), o_r, th_r, o_d0, v_d0, th_d0, b_r, b_d, q0, p0 in static:
            e1, e2 = sub.endpoints
            o_d = _mid(frame[o1], frame[o2])
            d_theta = _angle_change(v_d0, _sub(frame[e2], frame[e1]))
            th_d = th_d0 + d_theta
            # Relative motion: origin shift with the head motion undone, in the reference frame.
            moved = _rotate(_sub(o_d, og_d), -d_theta_g)
            shift_d = _sub(moved, _sub(o_d0, og_d0))
            shift_r = _rotate(shift_d, transfer)
            shift_r = (shift_r[0] * b_r / b_d, shift_r[1] * b_r / b_d)
            size = math.hypot(*shift_r)
            if size > MAX_PART_SHIFT * b_r:
                k = MAX_PART_SHIFT * b_r / size
                shift_r = (shift_r[0] * k, shift_r[1] * k)
            new_origin = _add(o_r, shift_r)
            new_angle = th_r + (d_theta - d_theta_g)
            for i in sub.indices:
                p = _rotate(_sub(frame[i], o_d), -th_d)
                step = MAX_POINT_STEP * b_r
                gx = _gain(q0[i][0], p0[i][0], b_r, b_d)
                gy = _gain(q0[i][1], p0[i][1], b_r, b_d)
                ratio = b_r / b_d
                q = (
                    q0[i][0] + _clip(_local_step(p[0] - p0[i][0], p0[i][0], gx, ratio), step),
                    q0[i][1] + _clip(_local_step(p[1] - p0[i][1], p0[i][1], gy, ratio), step),
                )
                proposals.setdefault(i, []).append(_add(new_origin, _rotate(q, new_angle)))
        for i in range(len(R)):
            if i in proposals:
                pts = proposals[i]
                x = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts))
            else:
                x = R[i]
            if global_motion:
                head_shift = _sub(og_d, og_d0)
                head_shift = (head_shift[0] * move_scale, head_shift[1] * move_scale)
                x = _add(_add(og_r, _rotate(_sub(x, og_r), d_theta_g)), head_shift)
            # Saturate at the float32 range (in the rescaled units, so undoing it cannot overflow).
            limit = math.ldexp(_F32_MAX, -shift)
            out[m, i] = (
                math.ldexp(min(max(x[0], -limit), limit), shift),
                math.ldexp(min(max(x[1], -limit), limit), shift),
            )
    return out.astype(np.float32)
