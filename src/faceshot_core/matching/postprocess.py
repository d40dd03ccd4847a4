"""Optional clean-up of matched landmarks: even spacing along each facial run.

Eq. 4 matches every landmark on its own, so points of one contour (the jaw, a lid, a lip) come
back at the right places but often unevenly spaced, or bunched where two landmarks find the same
texture.  The reference code (not the paper) fixes this after matching; this is a fresh
implementation of the same idea:

* each *curved run* - the jaw (0-16), each brow (17-21, 22-26), each eye's upper and lower lid
  (36-39, 39-41+36, 42-45, 45-47+42) and the upper and lower halves of the outer and inner lips
  (48-54, 54-59+48, 60-64, 64-67+60) - keeps its two endpoints, and its interior points are
  moved to equal arc-length spacing along a curve fitted to the whole run;
* the nose bridge (27-30) keeps its endpoints and is spaced evenly on the straight line between
  them;
* the lower nose (31-35) is left alone.

The curve, from richest to safest: an ellipse (runs of 6 points or more; Fitzgibbon's direct
least-squares fit in the numerically stable form of Halir and Flusser), a circle (3 points or
more; algebraic Kasa fit), and finally the run's own polyline.  A fit is used only when it is
*plausible* for the run: every point within ``tolerance`` x the run's length of the curve, the
points met in order along one arc shorter than a full turn, and the arc's length within a factor
1.5 of the polyline's.  Otherwise the next, simpler curve is tried; the polyline always works and
keeps the run's shape exactly, only evening out the spacing.

Because the fitted curve need not pass exactly through the endpoints, the arc is bent to meet
them: its offset from each endpoint is blended in linearly along its length.  So endpoints never
move, a run already evenly spaced on an ellipse (or circle, or line) comes back unchanged, and
degenerate runs (all points equal, non-finite values) are returned unchanged.  Output is never
NaN for finite input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.schema import NOSE_BRIDGE, NUM_POINTS, SUBPARTS

#: Runs whose interior is re-spaced along a fitted curve (every sub-part but the nose).
CURVE_RUNS: tuple[tuple[int, ...], ...] = tuple(s.indices for s in SUBPARTS if s.part != "nose")
#: Runs whose interior is re-spaced on the straight segment between their endpoints.
LINE_RUNS: tuple[tuple[int, ...], ...] = (NOSE_BRIDGE,)
#: Largest distance of a run's point from an accepted fitted curve, per unit of run length.
DEFAULT_TOLERANCE = 0.1
#: Samples of the arc used to measure arc length (the spacing error is far below 1e-3 px).
_ARC_SAMPLES = 2048
_MIN_ELLIPSE_POINTS = 6
_MIN_CIRCLE_POINTS = 3


@dataclass(frozen=True)
class _Ellipse:
    """``centre + R(angle) @ (a cos t, b sin t)``; a circle has ``a == b``."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float

    def parameters(self, points: np.ndarray) -> np.ndarray:
        """Parameter ``t`` of each point's radial projection onto the ellipse."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = points[:, 0] - self.cx, points[:, 1] - self.cy
        u, v = c * dx + s * dy, -s * dx + c * dy
        return np.arctan2(v / self.b, u / self.a)

    def points(self, t: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        u, v = self.a * np.cos(t), self.b * np.sin(t)
        return np.stack([self.cx + c * u - s * v, self.cy + s * u + c * v], axis=1)


# ---------------------------------------------------------------------------------------------
# Fits (in normalised coordinates, so conditioning does not depend on pixel scale)


def _normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    mean = points.mean(axis=0)
    scale = float(np.sqrt(((points - mean) ** 2).sum(axis=1).mean()))
    return (points - mean) / scale, mean, scale


def _fit_ellipse(points: np.ndarray) -> _Ellipse | None:
    """Direct least-squares ellipse (Halir & Flusser 1998), or None when no ellipse fits."""
    p, mean, scale = _normalise(points)
    x, y = p[:, 0], p[:, 1]
    d1 = np.stack([x * x, x * y, y * y], axis=1)
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    if np.linalg.cond(s3) > 1e10:
        return None  # (nearly) collinear points
    t = -np.linalg.solve(s3, s2.T)
    m = s1 + s2 @ t
    m = np.stack([m[2] / 2, -m[1], m[0] / 2])  # C1^-1 @ m for the constraint 4ac - b^2 = 1
    _, vecs = np.linalg.eig(m)
    vecs = np.real(vecs)
    cond = 4 * vecs[0] * vecs[2] - vecs[1] ** 2
    if not (cond > 0).any():
        return None
    a1 = vecs[:, int(np.argmax(cond))]
    conic = np.concatenate([a1, t @ a1])
    return _conic_to_ellipse(conic, mean, scale)


def _conic_to_ellipse(conic: np.ndarray, mean: np.ndarray, scale: float) -> _Ellipse | None:
    """``A x^2 + B xy + C y^2 + D x + E y + F = 0`` (normalised frame) -> geometric ellipse."""
    a, b, c, d, e, f = conic
    quad = np.array([[a, b / 2], [b / 2, c]])
    try:
        centre = np.linalg.solve(2 * quad, [-d, -e])
    except np.linalg.LinAlgError:
        return None
    f_c = f + 0.5 * (d * centre[0] + e * centre[1])  # conic value at the centre
    evals, evecs = np.linalg.eigh(quad)
    with np.errstate(divide="ignore", invalid="ignore"):
        axes_sq = -f_c / evals
    if not np.all(np.isfinite(axes_sq)) or (axes_sq <= 0).any():
        return None
    axes = np.sqrt(axes_sq) * scale
    angle = float(np.arctan2(evecs[1, 0], evecs[0, 0]))
    cx, cy = centre * scale + mean
    return _Ellipse(float(cx), float(cy), float(axes[0]), float(axes[1]), angle)


def _fit_circle(points: np.ndarray) -> _Ellipse | None:
    """Algebraic circle fit (Kasa): exact for points on a circle, None for collinear points."""
    p, mean, scale = _normalise(points)
    design = np.column_stack([2 * p, np.ones(len(p))])
    if np.linalg.cond(design) > 1e8:
        return None
    sol, *_ = np.linalg.lstsq(design, (p**2).sum(axis=1), rcond=None)
    r_sq = sol[2] + sol[0] ** 2 + sol[1] ** 2
    if not np.isfinite(r_sq) or r_sq <= 0 or r_sq > 1e8:
        return None
    r = float(np.sqrt(r_sq)) * scale
    cx, cy = sol[:2] * scale + mean
    return _Ellipse(float(cx), float(cy), r, r, 0.0)


# ---------------------------------------------------------------------------------------------
# Arcs


def _polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def _arc(ellipse: _Ellipse, run: np.ndarray, tolerance: float) -> np.ndarray | None:
    """Dense samples of the arc through ``run`` in order, or None if the fit is implausible."""
    t = ellipse.parameters(run)
    steps = np.angle(np.exp(1j * np.diff(t)))  # wrapped to (-pi, pi]
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return None  # points not met in order along one arc
    span = float(steps.sum())
    if abs(span) >= 2 * np.pi * 0.95:
        return None
    samples = ellipse.points(t[0] + np.linspace(0.0, span, _ARC_SAMPLES))
    length = _polyline_length(run)
    if not 1 / 1.5 <= _polyline_length(samples) / length <= 1.5:
        return None
    if _max_distance(run, samples) > tolerance * length:
        return None
    return samples


def _max_distance(points: np.ndarray, curve: np.ndarray) -> float:
    """Largest distance from a point to the (densely sampled) curve."""
    d = np.linalg.norm(points[:, None, :] - curve[None, :, :], axis=2)
    return float(d.min(axis=1).max())


def _even_on(
    curve: np.ndarray, start: np.ndarray, end: np.ndarray, n: int, tiny: float
) -> np.ndarray | None:
    """``n`` points at equal arc length on ``curve`` bent to run from ``start`` to ``end``.

    None when there is no length to share out (a line run whose endpoints coincide).
    """
    s = _cumulative(curve)
    if s[-1] <= tiny:
        return None
    s = s / s[-1]
    bent = curve + (1 - s)[:, None] * (start - curve[0]) + s[:, None] * (end - curve[-1])
    cum = _cumulative(bent)
    if cum[-1] <= tiny or not np.isfinite(cum[-1]):
        return None
    targets = np.linspace(0.0, cum[-1], n)
    out = np.stack([np.interp(targets, cum, bent[:, k]) for k in range(2)], axis=1)
    out[0], out[-1] = start, end
    return out


def _cumulative(curve: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])


# ---------------------------------------------------------------------------------------------
# Public API


def respace_run(
    points: np.ndarray,
    *,
    shape: Literal["curve", "line"] = "curve",
    tolerance: float = DEFAULT_TOLERANCE,
) -> np.ndarray:
    """One run ``[n, 2]`` with its interior evenly spaced, endpoints kept (float64).

    ``shape="curve"``: along a fitted ellipse, circle or the polyline (see the module
    docstring); ``shape="line"``: on the segment between the endpoints.  Runs shorter than 3
    points, with non-finite values, or of zero length come back unchanged.
    """
    run = np.array(points, dtype=np.float64)
    if run.ndim != 2 or run.shape[1] != 2:
        raise ValueError(f"a run must be [n, 2], got shape {list(run.shape)}")
    if len(run) < 3 or not np.isfinite(run).all():
        return run
    tiny = 1e-9 * (1.0 + float(np.abs(run).max()))
    if _polyline_length(run) <= tiny:
        return run
    curve = run[[0, -1]] if shape == "line" else _best_curve(run, tolerance)
    spaced = _even_on(curve, run[0], run[-1], len(run), tiny)
    return run if spaced is None else spaced


def _best_curve(run: np.ndarray, tolerance: float) -> np.ndarray:
    """The densest plausible curve for ``run``: ellipse, then circle, then its own polyline."""
    fits = []
    if len(run) >= _MIN_ELLIPSE_POINTS:
        fits.append(_fit_ellipse)
    if len(run) >= _MIN_CIRCLE_POINTS:
        fits.append(_fit_circle)
    for fit in fits:
        with np.errstate(all="ignore"):
            try:
                ellipse = fit(run)
            except np.linalg.LinAlgError:
                ellipse = None
            arc = _arc(ellipse, run, tolerance) if ellipse is not None else None
        if arc is not None and np.isfinite(arc).all():
            return arc
    return run


def respace(points: np.ndarray, *, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """68 landmarks with every curved run and the nose bridge evenly re-spaced (float32).

    See the module docstring for the runs and curves.  Endpoints of every run and the lower
    nose (31-35) never move; runs containing non-finite values are left as they are.
    """
    pts = np.array(points, dtype=np.float64)
    if pts.shape != (NUM_POINTS, 2):
        raise InvalidLandmarksError(f"respace expects [68, 2] points, got {list(pts.shape)}")
    out = pts.copy()
    for run in CURVE_RUNS:
        out[list(run)] = respace_run(pts[list(run)], shape="curve", tolerance=tolerance)
    for run in LINE_RUNS:
        out[list(run)] = respace_run(pts[list(run)], shape="line")
    return out.astype(np.float32)
