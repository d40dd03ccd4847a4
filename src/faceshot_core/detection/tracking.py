"""Follow one face through a video: track from frame to frame, re-detect only when needed.

Detecting faces in the whole frame is the expensive step (dlib: ~20 ms at 512x512), fitting
the landmarks given a box is cheap (<1 ms).  Faces in driving videos move little between frames,
so the tracker derives the next frame's box from the previous frame's *landmarks* and only
confirms, with a search restricted to the neighbourhood of that box (``detect(near=...)``,
~2 ms), that a face is still there.  Deriving the box from the landmarks, rather than taking the
detector's box every frame, also removes the frame-to-frame wobble of detector boxes (dlib's
are quantised to its 8-pixel HOG cells), which would otherwise show as landmark jitter.

The whole frame is searched again when

* there is no track yet, or the face was lost in the previous frame;
* the tracked box has moved mostly out of the frame;
* the neighbourhood search finds no face overlapping the tracked box (the face left, was
  covered, or jumped further than the search reaches);
* the fitted landmarks disagree with the face found nearby (poor fit: the box implied by the
  new landmarks barely overlaps the detection);
* optionally every ``redetect_every`` frames, as a safety net.

Which face: unless told (``anchor=``), at the first detection, among faces at least 70 % as
large as the largest, the one nearest the frame centre (the subject of a driving video is big
and central).  After that always the face nearest the last tracked position, and only within a
radius that grows while the face stays lost - so a bystander is not picked up just because the
subject was covered for a frame, but a subject that reappears elsewhere after a cut is found
again.  A face is only (re-)acquired after the detector's second opinion
(:meth:`~faceshot_core.detection.base.FaceDetector.confirm`) agrees: a track started on a false
detection (a badge, a pattern on a shirt) would otherwise be followed to the end of the video.

With ``track=False`` the same class detects on every frame (still following one face), which
is what the benchmark compares against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from faceshot_core.detection.base import Box, FaceDetector


@dataclass
class TrackerStats:
    """How each frame was obtained, for benchmarks and diagnostics."""

    frames: int = 0
    tracked: int = 0
    detected: int = 0
    missed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def note(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


class FaceTracker:
    """Landmarks of one face, frame after frame (see the module docstring).

    Parameters:
        detector: any :class:`~faceshot_core.detection.base.FaceDetector`.
        track: follow the face from the previous frame's landmarks; ``False`` runs the full
            detector on every frame.
        redetect_every: also search the whole frame every N frames (``None``: never).
        min_inside: re-detect when less than this share of the tracked box is in the frame.
        min_overlap: IoU the nearby detection must have with the tracked box to confirm it.
        min_fit: IoU between the box implied by the new landmarks and the nearby detection
            below which the fit is judged poor and redone from the detection's box.
        confirm_cooldown: frames during which a box refused by ``detector.confirm`` is not
            asked about again.
        fast_motion_overlap: when the tracked box and the nearby detection overlap less than
            this (IoU), the face moved fast and the fit starts from the detection's box.
        refine: extra landmark passes with the box re-derived from the latest points; one pass
            re-centres the box after fast motion at <1 ms.
        reacquire_radius: how far (in face sizes) from the last tracked position a face may be
            to be taken as the same face, growing by ``reacquire_growth`` per frame lost.
        anchor: the face to follow, as a box near it in the first frame (for example chosen by
            the user, or a ground-truth box in an evaluation); by default the largest, most
            central face is taken.
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        track: bool = True,
        redetect_every: int | None = None,
        min_inside: float = 0.6,
        min_overlap: float = 0.3,
        min_fit: float = 0.55,
        refine: int = 1,
        fast_motion_overlap: float = 0.65,
        confirm_cooldown: int = 5,
        reacquire_radius: float = 1.0,
        reacquire_growth: float = 0.25,
        anchor: Box | None = None,
    ) -> None:
        if redetect_every is not None and redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1 or None, got {redetect_every}")
        self.detector = detector
        self.track = track
        self.redetect_every = redetect_every
        self.min_inside = min_inside
        self.min_overlap = min_overlap
        self.min_fit = min_fit
        self.refine = max(0, int(refine))
        self.fast_motion_overlap = fast_motion_overlap
        self.confirm_cooldown = max(1, int(confirm_cooldown))
        self.reacquire_radius = reacquire_radius
        self.reacquire_growth = reacquire_growth
        self.initial_anchor = anchor
        self.stats = TrackerStats()
        self._points: np.ndarray | None = None  # previous frame's landmarks (None: lost)
        self._anchor: Box | None = anchor  # last known face box (kept while lost)
        self._lost = 0  # frames since the face was last seen
        self._since_full = 0  # frames since the last whole-frame detection
        self._rejected: list[tuple[Box, int]] = []  # (box, frame) refused confirmation

    def reset(self) -> None:
        """Forget the face and the statistics (e.g. before a new video)."""
        self.stats = TrackerStats()
        self._points = None
        self._anchor = self.initial_anchor
        self._lost = 0
        self._since_full = 0
        self._rejected = []

    def update(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks ``[68, 2]`` of the followed face in ``frame``, or ``None`` if it is absent."""
        self.stats.frames += 1
        points = None
        if self.track and self._points is not None:
            due = self.redetect_every is not None and self._since_full + 1 >= self.redetect_every
            if due:
                self.stats.note("periodic")
            else:
                points = self._follow(frame, self._points)
                if points is not None:
                    self.stats.tracked += 1
                    self._since_full += 1
        if points is None:
            points = self._detect(frame)
            self._since_full = 0
            if points is not None:
                self.stats.detected += 1
        if points is None:
            self.stats.missed += 1
            self._points = None
            self._lost += 1
            return None
        self._points = points
        self._anchor = self.detector.box_from_landmarks(points)
        self._lost = 0
        return points

    # -----------------------------------------------------------------------------------------

    def _follow(self, frame: np.ndarray, previous: np.ndarray) -> np.ndarray | None:
        h, w = frame.shape[:2]
        box = self.detector.box_from_landmarks(previous)
        if box.fraction_inside(w, h) < self.min_inside:
            self.stats.note("out of frame")
            return None
        nearby = self.detector.detect(frame, near=box)
        match = max(nearby, key=box.iou, default=None)
        if match is None or box.iou(match) < self.min_overlap:
            self.stats.note("lost" if match is None else "jumped")
            return None
        # After fast motion the previous frame's box is well off the face, and a landmark fit
        # started from it converges slowly; start from the detection's box instead.
        start = box if box.iou(match) >= self.fast_motion_overlap else match
        points = self.detector.landmarks(frame, start)
        for _ in range(self.refine):
            points = self.detector.landmarks(frame, self.detector.box_from_landmarks(points))
        if self.detector.box_from_landmarks(points).iou(match) < self.min_fit:
            self.stats.note("poor fit")
            points = self.detector.landmarks(frame, match)
        return points

    def _detect(self, frame: np.ndarray) -> np.ndarray | None:
        boxes = self.detector.detect(frame)
        if self._anchor is not None and self._lost == 0 and self._points is not None:
            # The face was in the previous frame: distance gating is enough.
            box = next(iter(self._near_anchor(boxes)), None)
        else:
            box = self._acquire(frame, boxes)
        if box is None:
            return None
        return self.detector.landmarks(frame, box)

    def _acquire(self, frame: np.ndarray, boxes: list[Box]) -> Box | None:
        """Start (or restart) following a face: candidates in order of preference, each
        confirmed by the detector's second opinion.  Boxes refused recently are not asked about
        again (a static false face would otherwise cost a confirmation every frame)."""
        if self._anchor is None:
            candidates = self._by_prominence(boxes, frame.shape[1], frame.shape[0])
        else:
            candidates = self._near_anchor(boxes)
        now = self.stats.frames
        # Forget refusals older than the cool-down: a real face refused once (a bad frame) gets
        # another chance, a static false face costs one confirmation per cool-down period.
        self._rejected = [(b, t) for b, t in self._rejected if now - t < self.confirm_cooldown]
        for box in candidates:
            if any(box.iou(r) > 0.5 for r, _ in self._rejected):
                self.stats.note("refused before")
                continue
            if self.detector.confirm(frame, box):
                return box
            self._rejected.append((box, now))
            self.stats.note("not confirmed")
        return None

    @staticmethod
    def _by_prominence(boxes: list[Box], width: int, height: int) -> list[Box]:
        """Big faces first (at least 70 % of the largest), each group nearest the centre first."""
        if not boxes:
            return []
        largest = max(b.area for b in boxes)
        centre = Box.around(width / 2.0, height / 2.0, 0.0, 0.0)
        return sorted(boxes, key=lambda b: (b.area < 0.7 * largest, centre.distance(b)))

    def _near_anchor(self, boxes: list[Box]) -> list[Box]:
        """Boxes within the (growing) reacquire radius of the last known face, most alike first
        (centre distance in face sizes plus the log size ratio)."""
        anchor = self._anchor
        if anchor is None:
            return []
        radius = anchor.size * (self.reacquire_radius + self.reacquire_growth * self._lost)
        scale = max(anchor.size, 1.0)

        def cost(b: Box) -> float:
            return anchor.distance(b) / scale + abs(math.log(max(b.size, 1.0) / scale))

        return sorted((b for b in boxes if anchor.distance(b) <= radius), key=cost)
