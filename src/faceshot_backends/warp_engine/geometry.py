"""Plane geometry the mesh and the warp share: similarity fits, signed areas, the face frame.

Small numpy helpers with no knowledge of the mesh: the head's similarity motion (which cannot
shear, so a one-sided expression cannot tilt the forehead), twice the signed area of triangles
(orientation and fold-over tests), a smoothstep for the painters' fades, and the face's own axes
from the jaw ends.
"""

from __future__ import annotations

import numpy as np


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``src`` onto ``dst``: [2, 3].

    Solved in closed form with complex numbers (the 2-D Umeyama solution without reflection).
    Used for the head motion: a similarity cannot shear, so a one-sided expression (an eye
    closing) cannot tilt the forehead.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    zs = (src[:, 0] - mu_s[0]) + 1j * (src[:, 1] - mu_s[1])
    zd = (dst[:, 0] - mu_d[0]) + 1j * (dst[:, 1] - mu_d[1])
    var = float(np.vdot(zs, zs).real)
    k = complex(np.vdot(zs, zd) / var) if var > 1e-12 else 1.0 + 0.0j
    rot = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` ``[N, 2]`` mapped by a ``[2, 3]`` affine ``matrix``."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z of ``(a - o) x (b - o)``, broadcast over leading axes (twice the signed area)."""
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle ``[T, 3]`` (positive when counter-clockwise)."""
    p = vertices[triangles]
    return cross(p[:, 0], p[:, 1], p[:, 2])


def smoothstep(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, the cubic ``3t^2 - 2t^3`` between (a fade with no kink)."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(right, down, half_width)``: the face's axes from the jaw ends (0 -> 16) and its scale."""
    v = points[16] - points[0]
    length = float(np.hypot(*v))
    if length < 1e-6:  # degenerate jaw: fall back to image axes and the landmarks' extent
        return np.array([1.0, 0.0]), np.array([0.0, 1.0]), max(float(np.ptp(points)) / 2, 1.0)
    right = v / length
    return right, np.array([-right[1], right[0]]), length / 2
