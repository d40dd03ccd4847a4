"""Even re-spacing of matched landmarks along fitted curves (the reference code's clean-up)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.matching.postprocess import CURVE_RUNS, LINE_RUNS, respace, respace_run
from faceshot_core.sample_data import chelsea_landmarks
from faceshot_core.schema import LOWER_NOSE, NOSE_BRIDGE

Ellipse = tuple[float, float, float, float, float]  # cx, cy, a, b, angle


def on_ellipse(e: Ellipse, t: np.ndarray) -> np.ndarray:
    cx, cy, a, b, angle = e
    c, s = np.cos(angle), np.sin(angle)
    u, v = a * np.cos(t), b * np.sin(t)
    return np.stack([cx + c * u - s * v, cy + s * u + c * v], axis=1)


def arc_length_table(e: Ellipse, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Parameter and cumulative arc length, finely sampled (200k samples)."""
    t = np.linspace(t0, t1, 200_001)
    p = on_ellipse(e, t)
    return t, np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])


def evenly_on(e: Ellipse, t0: float, t1: float, n: int) -> np.ndarray:
    t, s = arc_length_table(e, t0, t1)
    return on_ellipse(e, np.interp(np.linspace(0, s[-1], n), s, t))


def arc_gaps(e: Ellipse, t0: float, t1: float, points: np.ndarray) -> np.ndarray:
    """Arc-length gaps between consecutive points lying on the ellipse arc ``t0 -> t1 > t0``."""
    cx, cy, a, b, angle = e
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    tp = np.arctan2((-s * dx + c * dy) / b, (c * dx + s * dy) / a)
    tp = t0 - 1e-9 + np.mod(tp - t0 + 1e-9, 2 * np.pi)  # into [t0, t0 + 2 pi)
    t, length = arc_length_table(e, t0, t1)
    return np.diff(np.interp(tp, t, length))


def off_curve(e: Ellipse, points: np.ndarray) -> np.ndarray:
    """Approximate distance of each point from the ellipse (radial, first order)."""
    cx, cy, a, b, angle = e
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    rho = np.hypot((c * dx + s * dy) / a, (-s * dx + c * dy) / b)
    return np.abs(rho - 1) * min(a, b)


# Arcs of the shapes respace() fits to each run length: ellipses for 6+ points, circles below.
ARCS = {
    "jaw, 17 points, ellipse": ((256.0, 200.0, 140.0, 190.0, 0.15), 0.2, 2.9, 17),
    "outer lip, 7 points, ellipse": ((250.0, 380.0, 60.0, 22.0, -0.1), 3.4, 5.9, 7),
    "brow, 5 points, circle": ((180.0, 260.0, 90.0, 90.0, 0.0), 4.0, 4.9, 5),
    "lid, 4 points, circle": ((200.0, 250.0, 30.0, 30.0, 0.0), 3.7, 5.7, 4),
}


@pytest.mark.parametrize("arc", ARCS.values(), ids=ARCS.keys())
def test_evenly_spaced_points_on_the_fitted_shape_are_unchanged(arc: tuple) -> None:
    e, t0, t1, n = arc
    points = evenly_on(e, t0, t1, n)
    np.testing.assert_allclose(respace_run(points), points, atol=1e-3)


@pytest.mark.parametrize("arc", ARCS.values(), ids=ARCS.keys())
def test_unevenly_spaced_points_become_even_with_endpoints_fixed(arc: tuple) -> None:
    e, t0, t1, n = arc
    rng = np.random.default_rng(n)
    t = np.concatenate([[t0], np.sort(rng.uniform(t0, t1, n - 2)), [t1]])
    points = on_ellipse(e, t)
    out = respace_run(points)
    np.testing.assert_array_equal(out[[0, -1]], points[[0, -1]])
    gaps = arc_gaps(e, t0, t1, out)
    before = arc_gaps(e, t0, t1, points)
    assert before.max() / before.min() > 1.5  # the input really was uneven
    assert np.abs(gaps / gaps.mean() - 1).max() < 0.02
    assert off_curve(e, out).max() < 1e-3  # and the points stay on the curve


def _turns(points: np.ndarray) -> np.ndarray:
    """Turning angle (degrees) at each interior vertex of a polyline."""
    v = np.diff(points, axis=0)
    return np.degrees(np.angle(np.exp(1j * np.diff(np.arctan2(v[:, 1], v[:, 0])))))


def test_an_off_curve_endpoint_bends_the_curve_without_a_kink() -> None:
    e, t0, t1, n = ARCS["jaw, 17 points, ellipse"]
    points = evenly_on(e, t0, t1, n)
    radial = points[0] - np.array(e[:2])
    points[0] += 10 * radial / np.linalg.norm(radial)  # the first endpoint 10 px off the curve
    assert _turns(points)[0] < 0  # a kink: the input turns the wrong way at point 1
    out = respace_run(points)
    np.testing.assert_array_equal(out[[0, -1]], points[[0, -1]])
    turns = _turns(out)
    assert (turns > 0).all()  # convex throughout
    assert abs(turns[0] - turns[1]) < 2.0  # measured 5.5 vs 6.1 degrees (unbent: -2.3 vs 6.1)


def test_line_runs_are_spaced_on_the_segment() -> None:
    run = np.array([[100.0, 100.0], [101.0, 103.0], [99.0, 130.0], [100.0, 160.0]])
    out = respace_run(run, shape="line")
    np.testing.assert_allclose(out, np.linspace(run[0], run[-1], 4), atol=1e-9)


def _circle_arc(a: np.ndarray, b: np.ndarray, bulge: float, n: int) -> np.ndarray:
    """``n`` points evenly on a circular arc from ``a`` to ``b`` bulging ``bulge`` px sideways."""
    mid, half = (a + b) / 2, np.linalg.norm(b - a) / 2
    normal = np.array([-(b - a)[1], (b - a)[0]]) / (2 * half)
    radius = (half**2 + bulge**2) / (2 * abs(bulge))
    centre = mid + normal * np.sign(bulge) * (abs(bulge) - radius)
    ta, tb = (np.arctan2(*(p - centre)[::-1]) for p in (a, b))
    apex = mid + normal * bulge
    t_apex = np.arctan2(*(apex - centre)[::-1])
    step = np.angle(np.exp(1j * (t_apex - ta)))
    span = 2 * step if abs(np.angle(np.exp(1j * (ta + 2 * step - tb)))) < 1e-9 else None
    assert span is not None
    t = ta + np.linspace(0, span, n)
    return centre + radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def clean_face() -> np.ndarray:
    """68 points whose every run is already evenly spaced on the curve respace() fits to it."""
    p = np.zeros((68, 2))
    p[0:17] = evenly_on((256.0, 200.0, 150.0, 200.0, 0.0), np.pi, 0.0, 17)
    p[17:22] = _circle_arc(np.array([150.0, 160.0]), np.array([230.0, 150.0]), -12.0, 5)
    p[22:27] = _circle_arc(np.array([282.0, 150.0]), np.array([362.0, 160.0]), -12.0, 5)
    p[27:31] = np.linspace([256.0, 170.0], [256.0, 250.0], 4)
    p[31:36] = [[230, 270], [243, 275], [256, 278], [269, 275], [282, 270]]
    for first, (a, b) in (
        (36, ((170.0, 190.0), (225.0, 192.0))),
        (42, ((287.0, 192.0), (342.0, 190.0))),
    ):
        ca, cb = np.array(a), np.array(b)
        p[first : first + 4] = _circle_arc(ca, cb, -10.0, 4)
        p[[first + 3, first + 4, first + 5, first]] = _circle_arc(cb, ca, -7.0, 4)
    left, right = np.array([205.0, 330.0]), np.array([307.0, 330.0])
    p[48:55] = evenly_on((256.0, 330.0, 51.0, 18.0, 0.0), np.pi, 2 * np.pi, 7)
    p[[54, 55, 56, 57, 58, 59, 48]] = evenly_on((256.0, 330.0, 51.0, 25.0, 0.0), 0.0, np.pi, 7)
    p[48], p[54] = left, right  # the ellipses pass through the corners already
    p[60:65] = _circle_arc(np.array([220.0, 331.0]), np.array([292.0, 331.0]), -6.0, 5)
    p[[64, 65, 66, 67, 60]] = _circle_arc(
        np.array([292.0, 331.0]), np.array([220.0, 331.0]), -8.0, 5
    )
    return p


def test_a_clean_face_is_unchanged() -> None:
    face = clean_face()
    np.testing.assert_allclose(respace(face), face, atol=1e-3)


def test_respace_moves_only_interiors_and_evens_a_real_face() -> None:
    face = chelsea_landmarks().points
    out = respace(face)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    endpoints = sorted({i for run in CURVE_RUNS + LINE_RUNS for i in (run[0], run[-1])})
    np.testing.assert_array_equal(out[endpoints], face[endpoints])
    np.testing.assert_array_equal(out[list(LOWER_NOSE)], face[list(LOWER_NOSE)])
    bridge = out[list(NOSE_BRIDGE)]
    np.testing.assert_allclose(bridge, np.linspace(bridge[0], bridge[-1], 4), atol=1e-4)
    jaw = np.linalg.norm(np.diff(out[0:17], axis=0), axis=1)
    jaw_before = np.linalg.norm(np.diff(face[0:17], axis=0), axis=1)
    assert jaw.std() / jaw.mean() < jaw_before.std() / jaw_before.mean() / 3


# ---------------------------------------------------------------------------------------------
# Degenerate input


def test_all_equal_points_are_unchanged() -> None:
    face = np.full((68, 2), 42.0)
    np.testing.assert_array_equal(respace(face), face)
    np.testing.assert_array_equal(respace_run(np.full((17, 2), 3.0)), np.full((17, 2), 3.0))


def test_collinear_runs_stay_on_their_line() -> None:
    even = np.stack([np.linspace(10, 90, 17), np.linspace(20, 60, 17)], axis=1)
    np.testing.assert_allclose(respace_run(even), even, atol=1e-9)
    uneven = even.copy()
    uneven[1:-1] = even[0] + (even[-1] - even[0]) * np.linspace(0, 1, 17)[1:-1, None] ** 2
    out = respace_run(uneven)
    np.testing.assert_allclose(out, even, atol=1e-6)


def test_two_coincident_endpoints_and_short_runs_are_safe() -> None:
    loop = np.array([[0.0, 0.0], [10.0, 5.0], [0.0, 10.0], [-10.0, 5.0], [0.0, 0.0]])
    out = respace_run(loop)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[[0, -1]], loop[[0, -1]])
    np.testing.assert_array_equal(respace_run(loop[:2]), loop[:2])


def test_non_finite_runs_are_left_alone_and_do_not_spread() -> None:
    face = clean_face()
    face[40] = np.nan  # in the right eye's lower lid
    out = respace(face)
    assert np.isnan(out[40]).all() and np.isfinite(np.delete(out, 40, axis=0)).all()
    np.testing.assert_allclose(np.delete(out, 40, axis=0), np.delete(face, 40, axis=0), atol=1e-3)


def test_wrong_shape_is_refused() -> None:
    with pytest.raises(InvalidLandmarksError, match=r"\[68, 2\]"):
        respace(np.zeros((67, 2)))


coordinates = st.floats(min_value=0, max_value=512, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (68, 2), elements=coordinates))
def test_any_face_gives_finite_bounded_points_with_endpoints_fixed(face: np.ndarray) -> None:
    out = respace(face)
    assert np.isfinite(out).all()
    for run in CURVE_RUNS + LINE_RUNS:
        pts = face[list(run)]
        np.testing.assert_array_equal(out[[run[0], run[-1]]], pts[[0, -1]].astype(np.float32))
        reach = np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()
        assert (out[list(run)] >= pts.min(axis=0) - reach - 1e-3).all()
        assert (out[list(run)] <= pts.max(axis=0) + reach + 1e-3).all()
