"""How steady a landmark sequence is, and how much of its expressions smoothing kept.

Two numbers decide whether a driving sequence is fit to animate a character: *jitter* (the
shimmer a still or slowly moving face shows frame to frame) and the *amplitude* of the quick,
meaningful motions (blinks, mouth openings) that a smoother must not flatten.  Both are defined
here once, so tests, benchmarks and tuning measure the same thing.

Jitter (:func:`jitter`) is measured from the second difference ``p[t-1] - 2 p[t] + p[t+1]`` of
every point: motion at constant speed (a head turning, a slow drift) has none, and the median
over frames ignores the few frames where a blink or a cut accelerates the points.  The magnitude
is divided by sqrt(3), so for pure white noise it equals the mean frame-to-frame displacement
(``|p[t+1] - p[t]|``) that a viewer sees as shimmer, and by the inter-ocular distance (IOD,
between the centres of the two eyes), so a small and a large face compare.

Amplitude (:func:`amplitude_kept`): the eye aperture (mean lid gap of both eyes) and the inner
mouth opening are traced in the raw sequence; each prominent dip of the eyes (blink) and peak of
the mouth (opening) is an event, and its prominence after smoothing is compared with its raw
prominence.  The smoothed value is read within a frame or two of the raw extremum, since a
zero-lag smoother may move the extremum by a frame.  Raw prominence includes the noise at the
extremum (a max picks positive noise), so even a perfect denoiser reads a few % below 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from faceshot_core.anatomy import EYELID_PAIRS, INNER_LIP_PAIRS

#: Events smaller than these (fractions of the IOD) are not counted: at dlib's noise level
#: (about 1 % of the IOD per point) a smaller dip is as likely noise as a blink.
MIN_BLINK = 0.04
MIN_MOUTH = 0.06


def _points(points: np.ndarray) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [M, 68, 2], got {list(arr.shape)}")
    return arr


def interocular(points: np.ndarray) -> float:
    """Median over frames of the distance between the eye centres (means of 36-41, 42-47)."""
    arr = _points(points)
    right, left = arr[:, 36:42].mean(axis=1), arr[:, 42:48].mean(axis=1)
    return float(np.median(np.linalg.norm(left - right, axis=-1)))


def jitter_per_frame(points: np.ndarray) -> np.ndarray:
    """``[M - 2]`` mean point magnitude of the second difference / sqrt(3), in pixels."""
    arr = _points(points)
    if len(arr) < 3:
        return np.zeros(0)
    accel = arr[:-2] - 2.0 * arr[1:-1] + arr[2:]
    return np.linalg.norm(accel, axis=-1).mean(axis=1) / np.sqrt(3.0)


def jitter(points: np.ndarray) -> float:
    """Frame-to-frame jitter as a fraction of the IOD (see the module docstring); 0 if M < 3."""
    per_frame = jitter_per_frame(points)
    if per_frame.size == 0:
        return 0.0
    return float(np.median(per_frame)) / interocular(points)


def max_motion(points: np.ndarray) -> float:
    """Largest displacement of any point between two consecutive frames, in pixels."""
    arr = _points(points)
    if len(arr) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(arr, axis=0), axis=-1).max())


def eye_aperture(points: np.ndarray) -> np.ndarray:
    """``[M]`` mean lid gap of both eyes (|37-41|, |38-40|, |43-47|, |44-46|), pixels."""
    return _gap(_points(points), EYELID_PAIRS)


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """``[M]`` mean inner-lip gap (|61-67|, |62-66|, |63-65|), pixels."""
    return _gap(_points(points), INNER_LIP_PAIRS)


def _gap(arr: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    upper = arr[:, [a for a, _ in pairs]]
    lower = arr[:, [b for _, b in pairs]]
    return np.linalg.norm(lower - upper, axis=-1).mean(axis=1)


@dataclass(frozen=True)
class Event:
    """A blink or mouth opening: where, how deep in the raw and smoothed sequences (pixels)."""

    kind: str  # "blink" or "mouth"
    frame: int
    raw: float
    smoothed: float

    @property
    def kept(self) -> float:
        return self.smoothed / self.raw if self.raw > 0 else 1.0


def events(raw: np.ndarray, smoothed: np.ndarray, *, window: int = 2) -> list[Event]:
    """Blinks and mouth openings found in ``raw``, with their prominence in both sequences."""
    a, b = _points(raw), _points(smoothed)
    if a.shape != b.shape:
        raise ValueError(f"raw {list(a.shape)} and smoothed {list(b.shape)} differ in shape")
    iod = interocular(a)
    found: list[Event] = []
    # Blinks are dips of the aperture: peaks of its negative.
    for kind, signal, least in (
        ("blink", lambda p: -eye_aperture(p), MIN_BLINK),
        ("mouth", mouth_opening, MIN_MOUTH),
    ):
        x, y = signal(a), signal(b)
        peaks, props = find_peaks(x, prominence=least * iod)
        for t, lb, rb, prom in zip(
            peaks, props["left_bases"], props["right_bases"], props["prominences"], strict=True
        ):
            lo, hi = max(int(t) - window, 0), min(int(t) + window + 1, len(y))
            top = float(y[lo:hi].max())
            base = max(float(y[lb : t + 1].min()), float(y[t : rb + 1].min()))
            found.append(Event(kind, int(t), float(prom), max(top - base, 0.0)))
    return found


def amplitude_kept(raw: np.ndarray, smoothed: np.ndarray) -> dict[str, float]:
    """Smallest share of an event's raw prominence that the smoothed sequence keeps, per kind.

    Returns ``{"blink": ..., "mouth": ...}`` with the minimum over that kind's events, and
    ``nan`` for a kind without events (so a missing kind is not mistaken for a perfect score).
    """
    found = events(raw, smoothed)
    out: dict[str, float] = {}
    for kind in ("blink", "mouth"):
        kept = [e.kept for e in found if e.kind == kind]
        out[kind] = float(min(kept)) if kept else float("nan")
    return out
