"""Follow one face through a video: track from frame to frame, re-detect only when needed.

Detecting faces in the whole frame is the expensive step (dlib: ~20 ms at 512x512), fitting
the landmarks given a box is cheap (a few ms).  Faces in driving videos move little between
frames, so the tracker fits each frame's landmarks from the box of the previous frame and only
confirms, with a search restricted to the neighbourhood of that box (``detect(near=...)``,
~2 ms), that a face is still there.  The box comes from the *landmarks* (the box the detector
would draw around them, :meth:`~faceshot_core.detection.base.FaceDetector.box_from_landmarks`),
not from the detector's box each frame, whose wobble (dlib's boxes are quantised to its 8-pixel
HOG cells) would otherwise show as landmark jitter.

A still face must give still landmarks, and a box re-derived from every frame's landmarks does
not: landmark models are not smooth functions of their box (dlib's points move by ~1 px when its
box moves by 0.6 px), so on a frame repeated the fit from box A implies a box B, the fit from B
implies A again, and the points cycle between two or three positions for good (the astronaut
repeated: 0.4 px on average and 1.5 px at worst, every frame).  So the box is *held*: the next
frame is fitted from the box the current points were fitted from, and that box moves to the
points' own box only when this lies outside a dead-band (``steady_band``, 2 % of the face size
in centre or in size); then the frame is fitted again from the new box (``refine`` times at
most).  Identical frames therefore give identical points, and a moving face is refitted from a
box at most 2 % off, which costs no accuracy: the fit's error does not grow with the box's
offset up to 4 % (measured with dlib on the shared driving video).  Iterating to a fixed point
instead would cost several fits per frame and need not converge: the cycles above are exactly
iterations that do not.

The whole frame is searched again when

* there is no track yet, or the face was lost in the previous frame;
* the held box has moved mostly out of the frame;
* the neighbourhood search finds no face overlapping the held box (the face left, was
  covered, or jumped further than the search reaches);
* the fitted landmarks disagree with the face found nearby (poor fit: the box implied by the
  new landmarks barely overlaps the detection);
* optionally every ``redetect_every`` frames, as a safety net.

Which face: unless told (``anchor=`` a box, or ``face=`` a
:data:`~faceshot_core.detection.choice.FaceChoice`: ``"largest"``, an index left to right, a
point), at the first detection, among faces at least 70 % as large as the largest, the one
nearest the frame centre (the subject of a driving video is big and central).  After that always
the face nearest the last tracked position, and only within a radius that grows while the face
stays lost - so a bystander is not picked up just because the subject was covered for a frame,
but a subject that reappears elsewhere after a cut is found again.  A face is only
(re-)acquired after the detector's second opinion
(:meth:`~faceshot_core.detection.base.FaceDetector.confirm`) agrees: a track started on a false
detection (a badge, a pattern on a shirt) would otherwise be followed to the end of the video.

With ``track=False`` the same class detects on every frame (still following one face, and still
refining the fit from the landmarks' own box), which is what the benchmark compares against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from faceshot_core.detection.base import Box, FaceDetector
from faceshot_core.detection.choice import (
    FaceChoice,
    check_face_choice,
    left_to_right,
    pick_index,
    rank_faces,
)


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
        refine: at most this many extra landmark passes per frame, each from the box implied
            by the latest points, while that box lies outside the dead-band.  Usually none is
            needed; one re-centres the box after fast motion, and a face first found with its
            mouth wide open needs two or three (its box grows with the jaw: with one, the next
            frames still converge and the points jump by 8 px on the shared video).
        reacquire_radius: how far (in face sizes) from the last tracked position a face may be
            to be taken as the same face, growing by ``reacquire_growth`` per frame lost.
        anchor: the face to follow, as a box near it in the first frame (for example a
            ground-truth box in an evaluation); overrides ``face``.
        face: which face to start following when there are several (see
            :mod:`~faceshot_core.detection.choice`); by default the largest, most central one.
            An index beyond the faces found raises
            :class:`~faceshot_core.detection.choice.FaceChoiceError` from :meth:`update`.
        steady_band: the held box moves to the landmarks' own box only when that is more than
            this share of the face size away (centre) or larger/smaller (see the module
            docstring); 0 refits from the landmarks' box every frame.
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
        refine: int = 3,
        fast_motion_overlap: float = 0.65,
        confirm_cooldown: int = 5,
        reacquire_radius: float = 1.0,
        reacquire_growth: float = 0.25,
        anchor: Box | None = None,
        face: FaceChoice = "auto",
        steady_band: float = 0.02,
    ) -> None:
        if redetect_every is not None and redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1 or None, got {redetect_every}")
        if not 0.0 <= steady_band < 0.5:
            raise ValueError(f"steady_band must be in [0, 0.5), got {steady_band}")
        self.face = check_face_choice(face)
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
        self.steady_band = float(steady_band)
        self.stats = TrackerStats()
        self._points: np.ndarray | None = None  # previous frame's landmarks (None: lost)
        self._box: Box | None = None  # the box they were fitted from (held; see module doc)
        self._anchor: Box | None = anchor  # last known face box (kept while lost)
        self._lost = 0  # frames since the face was last seen
        self._since_full = 0  # frames since the last whole-frame detection
        self._rejected: list[tuple[Box, int]] = []  # (box, frame) refused confirmation

    def reset(self) -> None:
        """Forget the face and the statistics (e.g. before a new video)."""
        self.stats = TrackerStats()
        self._points = self._box = None
        self._anchor = self.initial_anchor
        self._lost = 0
        self._since_full = 0
        self._rejected = []

    def update(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks ``[68, 2]`` of the followed face in ``frame``, or ``None`` if it is absent."""
        self.stats.frames += 1
        found = None
        if self.track and self._points is not None and self._box is not None:
            due = self.redetect_every is not None and self._since_full + 1 >= self.redetect_every
            if due:
                self.stats.note("periodic")
            else:
                found = self._follow(frame, self._box)
                if found is not None:
                    self.stats.tracked += 1
                    self._since_full += 1
        if found is None:
            found = self._detect(frame)
            self._since_full = 0
            if found is not None:
                self.stats.detected += 1
        if found is None:
            self.stats.missed += 1
            self._points = self._box = None
            self._lost += 1
            return None
        points, self._box = found
        self._points = points
        self._anchor = self.detector.box_from_landmarks(points)
        self._lost = 0
        return points

    # -----------------------------------------------------------------------------------------

    def _follow(self, frame: np.ndarray, held: Box) -> tuple[np.ndarray, Box] | None:
        h, w = frame.shape[:2]
        if held.fraction_inside(w, h) < self.min_inside:
            self.stats.note("out of frame")
            return None
        nearby = self.detector.detect(frame, near=held)
        match = max(nearby, key=held.iou, default=None)
        if match is None or held.iou(match) < self.min_overlap:
            self.stats.note("lost" if match is None else "jumped")
            return None
        # After fast motion the held box is well off the face, and a landmark fit started from
        # it converges slowly; start from the detection's box instead.
        start = held if held.iou(match) >= self.fast_motion_overlap else match
        points, box = self._settle(frame, start, self.detector.landmarks(frame, start))
        if self.detector.box_from_landmarks(points).iou(match) < self.min_fit:
            self.stats.note("poor fit")
            points, box = self._settle(frame, match, self.detector.landmarks(frame, match))
        return points, box

    def _detect(self, frame: np.ndarray) -> tuple[np.ndarray, Box] | None:
        boxes = self.detector.detect(frame)
        if self._anchor is not None and self._lost == 0 and self._points is not None:
            # The face was in the previous frame: distance gating is enough.
            box = next(iter(self._near_anchor(boxes)), None)
        else:
            box = self._acquire(frame, boxes)
        if box is None:
            return None
        return self._settle(frame, box, self.detector.landmarks(frame, box))

    def _settle(self, frame: np.ndarray, box: Box, points: np.ndarray) -> tuple[np.ndarray, Box]:
        """Refit from the box the points imply while it lies outside the dead-band around the
        box they were fitted from (at most ``refine`` times); returns the points and that box."""
        for _ in range(self.refine):
            implied = self.detector.box_from_landmarks(points)
            if self._steady(box, implied):
                break
            box = implied
            points = self.detector.landmarks(frame, box)
        return points, box

    def _steady(self, held: Box, implied: Box) -> bool:
        """Whether ``implied`` lies within the dead-band around ``held`` (centre and size)."""
        scale = max(held.size, 1.0)
        moved = held.distance(implied) / scale
        resized = abs(math.log(max(implied.size, 1e-6) / scale))
        return moved <= self.steady_band and resized <= self.steady_band

    def _acquire(self, frame: np.ndarray, boxes: list[Box]) -> Box | None:
        """Start (or restart) following a face: candidates in order of preference, each
        confirmed by the detector's second opinion.  Boxes refused recently are not asked about
        again (a static false face would otherwise cost a confirmation every frame)."""
        now = self.stats.frames
        # Forget refusals older than the cool-down: a real face refused once (a bad frame) gets
        # another chance, a static false face costs one confirmation per cool-down period.
        self._rejected = [(b, t) for b, t in self._rejected if now - t < self.confirm_cooldown]
        if self._anchor is not None:
            candidates = self._near_anchor(boxes)
        elif isinstance(self.face, int):
            # An index counts the real faces of this frame, so every one is confirmed first.
            confirmed = [b for b in left_to_right(boxes) if self._confirmed(frame, b, now)]
            return pick_index(confirmed, self.face, now - 1) if confirmed else None
        else:
            candidates = rank_faces(boxes, self.face, frame.shape[1], frame.shape[0])
        return next((b for b in candidates if self._confirmed(frame, b, now)), None)

    def _confirmed(self, frame: np.ndarray, box: Box, now: int) -> bool:
        if any(box.iou(r) > 0.5 for r, _ in self._rejected):
            self.stats.note("refused before")
            return False
        if self.detector.confirm(frame, box):
            return True
        self._rejected.append((box, now))
        self.stats.note("not confirmed")
        return False

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
