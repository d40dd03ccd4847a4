"""The default detector: dlib's HOG face detector + its 68-point shape predictor, offline.

Why dlib: ``dlib-bin`` installs prebuilt wheels and ``face_recognition_models`` ships
``shape_predictor_68_face_landmarks.dat`` (trained on iBUG 300-W, so its points are already in
the 68-point order faceshot uses), so a fresh machine detects faces with no download and no GPU.

Five details matter for video:

* Whole-frame HOG detection costs ~20 ms on a 512x512 frame (~70 ms with one upsampling), the
  shape predictor under 1 ms.  Whole frames are searched on a copy at most 640 px on its longer
  side (faces from ~80 px in that copy; when none is found, once more with one upsampling, so
  from ~40 px), and landmarks are fitted at full resolution.  The tracker therefore calls
  :meth:`DlibDetector.detect` with ``near=`` most of the time, which searches only a small,
  size-normalised crop around the previous face (~2 ms).
* dlib returns *integer* landmark coordinates.  Quantisation to whole pixels is visible as
  jitter on a small face, so the predictor runs on a crop resampled so that the face is about
  :attr:`DlibDetector.landmark_face_px` pixels wide, and the points are mapped back with
  sub-pixel precision.
* HOG finds face-like texture too (a name badge, a flag: scores up to 0.8 where real faces
  score 0.6-2).  Once a face is followed, distance gating in the tracker keeps such false faces
  out, but a track must not *start* on one, so a newly acquired face is confirmed by
  :meth:`DlibDetector.confirm` with dlib's CNN face detector (MMOD, also shipped by
  ``face_recognition_models``) on a small crop: ~90 ms, once per acquisition.  The crop is
  sized so the face is ~90 px (MMOD misses faces much under 60 px) even when the HOG box is 30 %
  too large; measured on the shared 300-W/LFPW faces and the astronaut with boxes 0.8-1.3x the
  right size and shifted by 10 %: all confirmed, and none of the astronaut's false faces.
* The shape predictor was trained on dlib's own detector boxes, so
  :meth:`DlibDetector.box_from_landmarks` reproduces that box's geometry (calibrated on the
  300-W/LFPW samples in the shared data and scikit-image's astronaut: the box is a square of
  side 2.7 x the points' RMS radius, centred 0.17 x that radius above their centroid).  The
  radius includes the jaw, so a wide-open mouth gives a taller box; on the shared driving video
  with wide mouth openings this tracks the open jaw where dlib's own box (set by the upper
  face) makes the predictor draw the mouth half-closed.
* The shape predictor (a cascade of regression trees on pixel differences) is not a smooth
  function of its box: moving the box by a quarter of a percent (0.6 px on the shared driving
  video) moves the points by 0.9 px on average, no less than moving it by 4 %.  That is most of
  dlib's frame-to-frame jitter (about 1 % of the inter-ocular distance per frame on the shared
  videos), and it is noise, not bias: :meth:`DlibDetector.landmarks` therefore averages
  ``ensemble`` fits (default 8) from boxes moved by up to ``ensemble_spread`` (2 %) of their
  size, all on one resampled crop (~1 ms per fit).  Measured on the shared videos: jitter
  halves (1.0 % -> 0.47 % of the IOD), NME on the 300-W/LFPW samples improves a little (2.08 ->
  2.02 %), and blinks and mouth openings keep their depth.  The offsets are fixed, so the same
  frame and box always give the same points (a still face stays still).  Eight, not fewer:
  H.264 makes the frames of a still clip differ by a few grey levels, and with 4 or 6 fits the
  points of such a clip still move by up to 0.69 / 0.64 px per frame after smoothing (8: 0.34
  px; 21 frames of the shared videos, each repeated).  The price is time: ~20 ms per tracked
  frame at 512x512 instead of ~9 (``ensemble=1`` gives the old speed and jitter back).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceshot_core.detection.base import Box, check_frame, downscale
from faceshot_core.errors import MissingDependencyError

MODEL_FILE = "shape_predictor_68_face_landmarks.dat"
CNN_MODEL_FILE = "mmod_human_face_detector.dat"

# Box geometry of dlib's frontal face detector relative to the 68 points (see module doc).
_BOX_SIDE = 2.7
_BOX_RAISE = 0.17


def default_model_path(name: str = MODEL_FILE) -> Path:
    """Where ``face_recognition_models`` keeps its model ``name`` (default: the 68-point one).

    Found with ``find_spec`` and never imported: the package's ``__init__`` needs
    ``pkg_resources``, which recent setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "the dlib detector needs the models from face_recognition_models: "
            "pip install face_recognition_models"
        )
    return Path(spec.origin).parent / "models" / name


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise MissingDependencyError(
            f"the dlib detector needs dlib: pip install dlib-bin ({exc})"
        ) from exc
    return dlib


def box_offsets(count: int, spread: float) -> list[tuple[float, float, float]]:
    """``count`` fixed box perturbations ``(dx, dy, dscale)`` in box widths, the first none.

    The others spread evenly over a disc of radius ``spread`` (a golden-angle spiral: no two
    alike, no clustering) with scale changes spread evenly over ``+-spread``.
    """
    out = [(0.0, 0.0, 0.0)]
    for i in range(1, count):
        r = spread * np.sqrt(i / max(count - 1, 1))
        angle = i * 2.399963  # the golden angle, radians
        ds = spread * (2.0 * ((i * 0.618034) % 1.0) - 1.0)
        out.append((float(r * np.cos(angle)), float(r * np.sin(angle)), float(ds)))
    return out


class DlibDetector:
    """dlib HOG face detector + 68-point shape predictor (see the module docstring).

    Parameters:
        model_path: the shape predictor file; default: the one in ``face_recognition_models``.
        max_side: whole-frame detection runs on a copy whose longer side is at most this.
        upsample: HOG pyramid upsampling for whole-frame detection (0 finds faces from about
            80 px; each step halves that and costs ~4x).
        retry_upsampled: when nothing is found at ``upsample=0``, look once more with one
            upsampling (small faces), at the cost of that frame only.
        threshold: HOG score threshold for whole-frame detection (dlib's default is 0).
        near_threshold: threshold when checking near a tracked face; lower, because there the
            prior that a face is present is strong, and a brief low score (a blink, a turn)
            should not drop the track.
        search_scale: the neighbourhood searched by ``detect(near=box)``, in box sizes.
        near_face_px: in that search the crop is resampled so the face is about this wide
            (dlib's detection window is 80 px; some margin lets the face shrink).
        confirm_new_faces: check newly acquired faces with the CNN detector (see module
            docstring); ``False`` accepts every HOG detection.
        confirm_face_px: the CNN check runs on a crop resampled so the face is this wide.
        landmark_face_px: the shape predictor runs on a crop resampled so the face box is
            about this wide (sub-pixel output; see module docstring); 0 fits at the frame's
            own resolution (whole-pixel output).
        ensemble: landmarks are the mean of this many fits from slightly moved boxes (see
            module docstring); 1 fits once, from the box given.
        ensemble_spread: how far those boxes move (centre and size), in box sizes.
    """

    name = "dlib"

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        max_side: int | None = 640,
        upsample: int = 0,
        retry_upsampled: bool = True,
        threshold: float = 0.0,
        near_threshold: float = -0.4,
        search_scale: float = 1.8,
        near_face_px: int = 100,
        confirm_new_faces: bool = True,
        confirm_face_px: int = 90,
        landmark_face_px: int = 256,
        ensemble: int = 8,
        ensemble_spread: float = 0.02,
    ) -> None:
        self._dlib = _import_dlib()
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise MissingDependencyError(
                f"dlib shape predictor {path} not found (reinstall face_recognition_models or "
                "pass model_path=)"
            )
        self.model_path = path
        self.max_side = max_side
        self.upsample = int(upsample)
        self.retry_upsampled = retry_upsampled
        self.threshold = float(threshold)
        self.near_threshold = float(near_threshold)
        self.search_scale = float(search_scale)
        self.near_face_px = int(near_face_px)
        self.confirm_new_faces = confirm_new_faces
        self.confirm_face_px = int(confirm_face_px)
        self.landmark_face_px = int(landmark_face_px)
        if ensemble < 1 or not 0.0 <= ensemble_spread < 0.2:
            raise ValueError(
                f"ensemble must be >= 1 and ensemble_spread in [0, 0.2), got {ensemble}, "
                f"{ensemble_spread}"
            )
        self.ensemble = int(ensemble)
        self.ensemble_spread = float(ensemble_spread)
        self._offsets = box_offsets(self.ensemble, self.ensemble_spread)
        self._cnn: Any = None  # loaded on the first confirm()
        self._detector = self._dlib.get_frontal_face_detector()
        self._shape_model: Any = None  # read on the first landmarks(): a cached video needs none
        # The last frame converted to grey, kept by identity: the tracker asks detect() and
        # landmarks() about the same frame, and holding the reference makes identity safe.
        self._grey_src: np.ndarray | None = None
        self._grey: np.ndarray | None = None

    @property
    def _predictor(self) -> Any:
        """The 68-point shape predictor, read from its 100 MB file when first needed (0.7 s).

        A driving video found in the detection cache, or a batch job reading it, then never pays
        for it.
        """
        if self._shape_model is None:
            self._shape_model = self._dlib.shape_predictor(str(self.model_path))
        return self._shape_model

    # -----------------------------------------------------------------------------------------

    def cache_key(self) -> str:
        stat = self.model_path.stat()
        return (
            f"dlib-{self._dlib.__version__}-{self.model_path.name}-{stat.st_size}-"
            f"max{self.max_side}-up{self.upsample}{'r' if self.retry_upsampled else ''}-"
            f"t{self.threshold:g}-nt{self.near_threshold:g}-s{self.search_scale:g}-"
            f"n{self.near_face_px}-l{self.landmark_face_px}-"
            f"c{self.confirm_face_px if self.confirm_new_faces else 0}-"
            f"e{self.ensemble}x{self.ensemble_spread:g}"
        )

    def _to_grey(self, image: np.ndarray) -> np.ndarray:
        if image is self._grey_src and self._grey is not None:
            return self._grey
        arr = check_frame(image)
        grey = arr if arr.ndim == 2 else cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
        self._grey_src, self._grey = image, grey
        return grey

    def _run(self, grey: np.ndarray, upsample: int, threshold: float) -> list[Box]:
        rects, scores, _ = self._detector.run(grey, upsample, threshold)
        boxes = [
            Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(boxes, key=lambda b: -b.score)

    def detect(self, image: np.ndarray, near: Box | None = None) -> list[Box]:
        grey = self._to_grey(image)
        if near is not None:
            return self._detect_near(grey, near)
        small, scale = downscale(grey, self.max_side)
        boxes = self._run(small, self.upsample, self.threshold)
        if not boxes and self.retry_upsampled and self.upsample == 0:
            boxes = self._run(small, 1, self.threshold)
        return [b.mapped(1.0 / scale) for b in boxes]

    def _detect_near(self, grey: np.ndarray, near: Box) -> list[Box]:
        h, w = grey.shape[:2]
        side = max(near.width, near.height) * self.search_scale
        cx, cy = near.center
        x0, y0 = max(0, int(np.floor(cx - side / 2))), max(0, int(np.floor(cy - side / 2)))
        x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
        if x1 - x0 < 8 or y1 - y0 < 8 or near.size <= 0:
            return []
        f = self.near_face_px / near.size
        crop = grey[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
        interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(crop, size, interpolation=interp)
        return [b.mapped(1.0 / f, x0, y0) for b in self._run(crop, 0, self.near_threshold)]

    def confirm(self, image: np.ndarray, box: Box) -> bool:
        """Whether dlib's CNN face detector also sees a face at ``box`` (see module docstring)."""
        if not self.confirm_new_faces:
            return True
        if self._cnn is None:
            path = default_model_path(CNN_MODEL_FILE)
            if not path.is_file():
                raise MissingDependencyError(
                    f"dlib CNN face detector {path} not found (reinstall face_recognition_models "
                    "or pass confirm_new_faces=False)"
                )
            self._cnn = self._dlib.cnn_face_detection_model_v1(str(path))
        arr = check_frame(image)
        h, w = arr.shape[:2]
        side = 1.6 * max(box.width, box.height)
        cx, cy = box.center
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
        if x1 - x0 < 8 or y1 - y0 < 8 or box.size <= 0:
            return False
        f = self.confirm_face_px / box.size
        size = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
        crop = cv2.resize(
            arr[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
        )
        target = box.mapped(f, -x0 * f, -y0 * f)
        for det in self._cnn(np.ascontiguousarray(crop), 0):
            r = det.rect
            found = Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1)
            if found.distance(target) < 0.5 * target.size:
                return True
        return False

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        grey = self._to_grey(image)
        h, w = grey.shape[:2]
        # Crop with generous context (the predictor's features reach outside the box), then
        # resample so that the box is landmark_face_px wide.
        margin = (0.75 + self.ensemble_spread) * max(box.width, box.height)
        x0, y0 = max(0, int(np.floor(box.x0 - margin))), max(0, int(np.floor(box.y0 - margin)))
        x1, y1 = min(w, int(np.ceil(box.x1 + margin))), min(h, int(np.ceil(box.y1 + margin)))
        if x1 <= x0 or y1 <= y0:  # box entirely outside the image: fit on the whole frame
            x0, y0, x1, y1 = 0, 0, w, h
        zoom = self.landmark_face_px / max(box.width, 1.0) if self.landmark_face_px > 0 else 1.0
        crop = grey[y0:y1, x0:x1]
        if abs(zoom - 1.0) > 1e-3:
            size = (max(1, round((x1 - x0) * zoom)), max(1, round((y1 - y0) * zoom)))
            # Effective zoom per axis after rounding the crop size.
            zx, zy = size[0] / (x1 - x0), size[1] / (y1 - y0)
            crop = cv2.resize(
                crop, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
            )
        else:
            zx = zy = 1.0
        crop = np.ascontiguousarray(crop)
        # The mean of fits from slightly moved boxes (see the module docstring); the offsets
        # are fixed, so the same frame and box always give the same points.
        (cx, cy), side = box.center, box.width
        total = np.zeros((68, 2))
        for dx, dy, ds in self._offsets:
            grow = 1.0 + ds
            b = Box.around(cx + dx * side, cy + dy * side, box.width * grow, box.height * grow)
            rect = self._dlib.rectangle(
                round((b.x0 - x0) * zx),
                round((b.y0 - y0) * zy),
                round((b.x1 - x0) * zx) - 1,
                round((b.y1 - y0) * zy) - 1,
            )
            shape = self._predictor(crop, rect)
            total += [(p.x, p.y) for p in shape.parts()]
        pts = total / len(self._offsets)
        # Pixel centres: crop pixel i covers original [x0 + i/zx, x0 + (i+1)/zx).
        pts[:, 0] = x0 + (pts[:, 0] + 0.5) / zx - 0.5
        pts[:, 1] = y0 + (pts[:, 1] + 0.5) / zy - 0.5
        return pts.astype(np.float32)

    def box_from_landmarks(self, points: np.ndarray) -> Box:
        pts = np.asarray(points, dtype=np.float64)
        centroid = pts.mean(axis=0)
        radius = float(np.sqrt(((pts - centroid) ** 2).sum(axis=1).mean()))
        side = _BOX_SIDE * radius
        return Box.around(centroid[0], centroid[1] - _BOX_RAISE * radius, side, side)
