"""Points as complex numbers: input checks, unit axes and floored run sizes.

Every step of the retargeting works on points ``x + iy`` (float64/complex128): rotations are
products with unit complex numbers, so no trigonometric function is evaluated.  This module
holds the geometry those steps share, and the rules that keep it finite.

Sizes and degenerate input
--------------------------
Every radius is floored: ``b_eff = max(b, MIN_RUN_FRACTION * F, MIN_SIZE)`` with ``F`` the
face radius (largest distance of the 68 points from the face origin), so a collapsed run
borrows a size from the face and a collapsed face a tiny absolute size; all divisions are by
floored sizes.  Angles come from ``atan2``-style unit vectors with a zero vector
meaning "angle 0", and an angle *change* is the angle of ``v_m * conj(v_0)``, which is 0 when the
endpoints coincide in either frame; so coincident endpoints never produce NaN, and at worst an
arbitrary but harmless rotation (rotations are isometries).  Inputs beyond ``2**400`` are scaled
down by a power of two before the arithmetic and back afterwards (exact), so no intermediate can
overflow, and the float32 result saturates at the float32 range instead of becoming ``inf``
(both in :func:`~faceshot_core.retarget.retarget_points`).
"""

from __future__ import annotations

import math

import numpy as np

from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import FaceLandmarks, LandmarkSequence
from faceshot_core.schema import NUM_POINTS

#: A run's radius is at least this fraction of the face radius (collapsed runs).
MIN_RUN_FRACTION = 0.05
#: Absolute floor on every size, in input units (a collapsed face).
MIN_SIZE = 1e-9


def as_points(value: object, *, sequence: bool, name: str) -> tuple[np.ndarray, float]:
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


def unit(z: np.ndarray) -> np.ndarray:
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


def radii(offsets: np.ndarray, run_starts: np.ndarray, face_radius: float) -> np.ndarray:
    """Floored radius of each run from the complex offsets of its slots to its origin."""
    radius = np.maximum.reduceat(np.abs(offsets), run_starts)
    return np.maximum(radius, max(MIN_RUN_FRACTION * face_radius, MIN_SIZE))
