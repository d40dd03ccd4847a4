"""Temporal smoothing of landmark sequences (on by default for driving videos): One-Euro.

Per-frame landmarks jitter by a fraction of a pixel to a pixel, which an animator turns into a
shimmering face.  A fixed low-pass filter would remove the jitter but also flatten exactly the
motion that matters for a driving video - a blink lasts 3-4 frames, a mouth opens within 2-3.
The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) is a low-pass filter whose cutoff rises
with the speed of the signal: still points are smoothed hard (``min_cutoff``), fast ones are let
through almost unfiltered (``beta`` sets how quickly the cutoff rises with speed).

Three adaptations for landmarks:

* The filter runs on all 68x2 coordinates at once (NumPy arrays, no per-point loop), and the
  speed that sets the cutoff is the 2-D speed of each *point*, so x and y of a point are treated
  alike.
* Coordinates are divided by the face's inter-ocular distance before filtering, so the
  parameters mean the same for a face 60 px and 600 px wide: speeds are in inter-ocular distances
  per second.
* The One-Euro filter is causal, and a causal low-pass filter lags: on a head turning at a
  normal pace the filtered points trail the face by a pixel or more, and a mouth that lags its
  audio is visible.  A driving video is processed as a whole, so by default
  (``zero_lag=True``) the sequence is filtered forwards and backwards and the two passes are
  averaged: their lags have opposite signs and cancel.  :class:`OneEuroFilter` itself stays
  causal, for streaming use.

Tuned on the shared driving videos (``benchmarks/bench_detection.py``, measures in
:mod:`~faceshot_core.detection.stability`): with the default detector (dlib, 8-fit ensemble:
0.47 % of the inter-ocular distance of jitter per frame unsmoothed) the defaults bring the
jitter to about 0.27 % and keep at least 95 % of the depth of every blink and 99 % of every mouth
opening.  ``beta`` is high because the jitter left after the ensemble is small and a blink is
fast: a lower ``beta`` smooths more but flattens blinks first (``beta=12``, the first default:
0.16 % jitter but only 86 % of one blink's depth kept), and ``min_cutoff`` barely matters once
``beta`` is this high.  On a synthetic moving face the zero-lag filter stays as close to the
truth as the raw detections, where the causal filter alone trails the motion.

Smoothing is on by default in :func:`~faceshot_core.detection.driving.detect_driving_landmarks`
(``smoothing="one_euro"``); ``None`` or ``False`` turns it off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from faceshot_core.landmarks import DEFAULT_FPS, LandmarkSequence
from faceshot_core.schema import LEFT_EYE_OUTER_CORNER, RIGHT_EYE_OUTER_CORNER


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro filter settings, in face units (see module docstring).

    ``min_cutoff``: cutoff frequency (Hz) for a still face - lower smooths more.
    ``beta``: cutoff increase per unit of speed (inter-ocular distances per second) - higher
    follows fast motion (blinks, mouth) more closely.
    ``d_cutoff``: cutoff (Hz) of the low-pass filter on the speed estimate itself.
    ``zero_lag``: average a forward and a backward pass (offline use; see module docstring).
    """

    min_cutoff: float = 1.0
    beta: float = 60.0
    d_cutoff: float = 4.0
    zero_lag: bool = True

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name != "beta" and value == 0):
                raise ValueError(f"One-Euro {name} must be a positive number, got {value!r}")

    def key(self) -> str:
        """A short stable text form (for cache keys)."""
        return (
            f"oe-{self.min_cutoff:g}-{self.beta:g}-{self.d_cutoff:g}"
            f"{'-zl' if self.zero_lag else ''}"
        )


SmoothingSpec = None | bool | str | OneEuroParams | Mapping[str, float | bool]

#: The smoothing :func:`~faceshot_core.detection.driving.detect_driving_landmarks` applies
#: unless told otherwise.
DEFAULT_SMOOTHING: SmoothingSpec = "one_euro"


def resolve_smoothing(spec: SmoothingSpec) -> OneEuroParams | None:
    """What a smoothing setting means: the One-Euro parameters to apply, or ``None`` (off).

    ``None``, ``False`` or ``'none'`` -> off; ``True`` or ``'one_euro'`` -> the tuned defaults
    (:class:`OneEuroParams`); a mapping -> those parameters over the defaults.
    """
    if spec is None or spec is False or isinstance(spec, OneEuroParams):
        return spec or None
    if spec is True:
        return OneEuroParams()
    if isinstance(spec, str):
        name = spec.replace("-", "_").lower()
        if name in ("one_euro", "oneeuro", "1euro"):
            return OneEuroParams()
        if name in ("none", "off"):
            return None
        raise ValueError(f"unknown smoothing {spec!r}; use 'one_euro', None or OneEuroParams")
    if isinstance(spec, Mapping):
        known = set(asdict(OneEuroParams()))
        unknown = set(spec) - known
        if unknown:
            raise ValueError(
                f"unknown One-Euro parameter(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        values = {k: bool(v) if k == "zero_lag" else float(v) for k, v in spec.items()}
        return OneEuroParams(**values)  # type: ignore[arg-type]
    raise TypeError(
        f"smoothing must be None, a bool, 'one_euro', OneEuroParams or a dict, got {spec!r}"
    )


def _alpha(cutoff: np.ndarray | float, period: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass filter at ``cutoff`` Hz, step ``period`` s."""
    r = 2.0 * np.pi * cutoff * period
    return r / (r + 1.0)


class OneEuroFilter:
    """A One-Euro filter over arrays of points ``[..., 2]``, fed one frame at a time.

    ``scale`` divides coordinates before filtering (the face size; see module docstring).
    """

    def __init__(self, params: OneEuroParams, rate: float, scale: float = 1.0) -> None:
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"frame rate must be positive, got {rate}")
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.params = params
        self.period = 1.0 / rate
        self.scale = scale
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        x = np.asarray(points, dtype=np.float64) / self.scale
        if self._x is None or self._dx is None:
            self._x, self._dx = x, np.zeros_like(x)
            return x * self.scale
        p = self.params
        dx = (x - self._x) / self.period
        self._dx = self._dx + _alpha(p.d_cutoff, self.period) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True)
        a = _alpha(p.min_cutoff + p.beta * speed, self.period)
        self._x = self._x + a * (x - self._x)
        return self._x * self.scale


def face_scale(points: np.ndarray) -> float:
    """Median inter-ocular distance over ``[M, 68, 2]`` (1.0 if degenerate)."""
    d = np.linalg.norm(
        points[:, LEFT_EYE_OUTER_CORNER] - points[:, RIGHT_EYE_OUTER_CORNER], axis=-1
    )
    value = float(np.median(d))
    return value if math.isfinite(value) and value > 1e-6 else 1.0


def smooth_points(
    points: np.ndarray, fps: float, params: OneEuroParams | None = None
) -> np.ndarray:
    """One-Euro-filtered copy of a ``[M, 68, 2]`` array (float32).

    With ``params.zero_lag`` (the default) the result is the mean of a forward and a backward
    pass, which cancels the filter's lag.
    """
    p = params or OneEuroParams()
    arr = np.asarray(points, dtype=np.float64)
    scale = face_scale(arr)
    out = _one_pass(arr, fps, p, scale)
    if p.zero_lag:
        out = 0.5 * (out + _one_pass(arr[::-1], fps, p, scale)[::-1])
    return out.astype(np.float32)


def _one_pass(arr: np.ndarray, fps: float, params: OneEuroParams, scale: float) -> np.ndarray:
    filt = OneEuroFilter(params, fps, scale)
    out = np.empty_like(arr)
    for m in range(len(arr)):
        out[m] = filt(arr[m])
    return out


def smooth_sequence(
    sequence: LandmarkSequence, params: OneEuroParams | None = None
) -> LandmarkSequence:
    """The sequence with One-Euro-filtered points (flags, fps and size unchanged)."""
    fps = sequence.fps or DEFAULT_FPS
    return LandmarkSequence(
        smooth_points(sequence.points, fps, params),
        sequence.image_size,
        sequence.fps,
        sequence.flags,
        source=sequence.source,
    )
