"""The paper's detector: facexlib's RetinaFace (ResNet-50) + AWing FAN, 98 points -> 68.

Optional: ``pip install 'faceshot[fan]'`` (facexlib and torch).  facexlib pulls torchvision, which
has no CPU build on the package registry, so it is not a core dependency; the offline default is
:mod:`~faceshot_core.detection.dlib_detector`.

Weights are never downloaded here.  facexlib would fetch them on first use into its own folder
(``<site-packages>/facexlib/weights``); this module instead looks for them in the folder given as
``weights_dir``, else in that facexlib folder, and raises
:class:`~faceshot_core.errors.MissingDependencyError` naming the missing files and where to get
them.  Reference pipeline (paper code): RetinaFace at a 0.97 score threshold, the face crop is the
detection box, FAN runs on that crop, its 98 WFLW points are converted to 68.

WFLW-98 -> iBUG-68 (:data:`WFLW98_TO_IBUG68`), derived from WFLW's documented layout and matching
facexlib's ``landmark_98_to_68`` (so results agree with the reference code):

=========================  ==================  =============================================
iBUG 68                    WFLW 98             how
=========================  ==================  =============================================
0-16 jaw                   0-32 contour        every second point (0, 2, ..., 32)
17-21 right brow           33-41               33; then midpoints of upper/lower edge pairs
                                               (34, 41) (35, 40) (36, 39) (37, 38)
22-26 left brow            42-50               midpoints (42, 50) (43, 49) (44, 48) (45, 47);
                                               then 46
27-30 nose bridge          51-54               one to one
31-35 lower nose           55-59               one to one
36-41 right eye            60-67 (8 points)    60, 61, 63, 64, 65, 67 (corners, and the lid
                                               points either side of each lid's middle)
42-47 left eye             68-75 (8 points)    68, 69, 71, 72, 73, 75
48-59 outer lips           76-87               one to one
60-67 inner lips           88-95               one to one
(unused)                   96, 97              pupils
=========================  ==================  =============================================

WFLW's brows are closed outlines (upper edge 33-37 / 42-46, lower edge 38-41 / 47-50) while
iBUG's are single curves through the brow, hence the midpoints.  Some projects take the upper
edge only (33-37, 42-46); that puts 68-point brows a few pixels higher than the reference code.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceshot_core.detection.base import Box, check_frame, downscale
from faceshot_core.errors import MissingDependencyError

#: For each iBUG-68 index, the WFLW-98 indices whose mean it is (see module docstring).
WFLW98_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    *((2 * i,) for i in range(17)),  # jaw
    (33,), (34, 41), (35, 40), (36, 39), (37, 38),  # right brow
    (42, 50), (43, 49), (44, 48), (45, 47), (46,),  # left brow
    *((i,) for i in range(51, 60)),  # nose
    (60,), (61,), (63,), (64,), (65,), (67,),  # right eye
    (68,), (69,), (71,), (72,), (73,), (75,),  # left eye
    *((i,) for i in range(76, 96)),  # mouth
)  # fmt: skip

# Index arrays for a vectorised conversion: mean of columns A and B (B == A for single points).
_A = np.array([ix[0] for ix in WFLW98_TO_IBUG68])
_B = np.array([ix[-1] for ix in WFLW98_TO_IBUG68])

WEIGHTS: dict[str, tuple[str, str]] = {
    "retinaface_resnet50": (
        "detection_Resnet50_Final.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
    ),
    "awing_fan": (
        "alignment_WFLW_4HG.pth",
        "https://github.com/xinntao/facexlib/releases/download/v0.1.0/alignment_WFLW_4HG.pth",
    ),
}

INSTALL_HINT = "pip install 'faceshot[fan]'"


def wflw98_to_ibug68(points98: np.ndarray) -> np.ndarray:
    """Convert WFLW 98-point landmarks ``[98, 2]`` to iBUG 68 ``[68, 2]`` (float32)."""
    pts = np.asarray(points98, dtype=np.float64)
    if pts.shape != (98, 2):
        raise ValueError(f"expected 98 WFLW points [98, 2], got {list(pts.shape)}")
    return ((pts[_A] + pts[_B]) / 2.0).astype(np.float32)


def facexlib_weights_dir() -> Path | None:
    """facexlib's own download folder (``<facexlib package>/weights``), if facexlib is installed.

    Found without importing facexlib (which imports torch).
    """
    try:
        spec = importlib.util.find_spec("facexlib")
    except (ImportError, ValueError):  # a broken install, or a module without a spec
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "weights"


def find_weights(weights_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding both weight files, or a :class:`MissingDependencyError` saying what
    is missing where, and where to download it."""
    if weights_dir is not None:
        candidates = [Path(weights_dir)]
    else:
        default = facexlib_weights_dir()
        candidates = [default] if default is not None else []
    needed = [name for name, _ in WEIGHTS.values()]
    for folder in candidates:
        if all((folder / name).is_file() for name in needed):
            return folder
    where = str(candidates[0]) if candidates else "(no folder: pass weights_dir=)"
    missing = [
        f"{name} ({url})"
        for name, url in WEIGHTS.values()
        if not candidates or not (candidates[0] / name).is_file()
    ]
    raise MissingDependencyError(
        f"FAN detector weights missing in {where}: {'; '.join(missing)}. Download them into "
        "that folder (or pass weights_dir= a folder that has them); faceshot does not download "
        "weights."
    )


def _import_backends() -> tuple[Any, Any, Any]:
    try:
        torch = importlib.import_module("torch")
        detection = importlib.import_module("facexlib.detection")
        alignment = importlib.import_module("facexlib.alignment")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the 'fan' detector needs facexlib and torch, which are not installed "
            f"({exc.__class__.__name__}: {exc}); {INSTALL_HINT}, or use the default 'dlib' "
            "detector"
        ) from exc
    return torch, detection, alignment


def _init_model(init: Any, name: str, folder: Path, **kwargs: Any) -> Any:
    """Call a facexlib ``init_*_model``, pointing it at ``folder`` where it can be told so.

    facexlib < 0.3 has no ``model_rootpath`` and always uses its own folder; that is only
    acceptable when the weights were found there.
    """
    params = inspect.signature(init).parameters
    if "model_rootpath" in params:
        return init(name, model_rootpath=str(folder), **kwargs)
    if folder != facexlib_weights_dir():
        raise MissingDependencyError(
            f"this facexlib cannot load weights from {folder} (no model_rootpath); upgrade: "
            f"{INSTALL_HINT}"
        )
    return init(name, **kwargs)


class FanDetector:
    """RetinaFace + AWing FAN through facexlib (see the module docstring).

    Parameters:
        weights_dir: folder with ``detection_Resnet50_Final.pth`` and ``alignment_WFLW_4HG.pth``;
            default: facexlib's own weights folder.
        device: torch device; default ``cuda`` when available, else ``cpu``.
        threshold: RetinaFace score threshold (the paper uses 0.97).
        max_side: whole-frame detection runs on a copy at most this large.
        search_scale: neighbourhood searched by ``detect(near=box)``, in box sizes.
        half: run the networks in float16 (CUDA only).
    """

    name = "fan"

    def __init__(
        self,
        weights_dir: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        threshold: float = 0.97,
        max_side: int | None = 640,
        search_scale: float = 1.8,
        half: bool = False,
    ) -> None:
        torch, detection, alignment = _import_backends()
        folder = find_weights(weights_dir)
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.weights_dir = folder
        self.threshold = float(threshold)
        self.max_side = max_side
        self.search_scale = float(search_scale)
        self.half = half
        self._det = _init_model(
            detection.init_detection_model,
            "retinaface_resnet50",
            folder,
            half=half,
            device=self.device,
        )
        self._align = _init_model(
            alignment.init_alignment_model, "awing_fan", folder, half=half, device=self.device
        )
        facexlib = importlib.import_module("facexlib")
        self._version = str(getattr(facexlib, "__version__", "unknown"))

    def cache_key(self) -> str:
        sizes = "-".join(str((self.weights_dir / n).stat().st_size) for n, _ in WEIGHTS.values())
        return (
            f"fan-facexlib{self._version}-{sizes}-t{self.threshold:g}-max{self.max_side}-"
            f"s{self.search_scale:g}{'-half' if self.half else ''}"
        )

    def _no_grad(self) -> Any:
        no_grad = getattr(self._torch, "no_grad", None)
        return no_grad() if no_grad is not None else nullcontext()

    def _faces(self, bgr: np.ndarray) -> list[Box]:
        with self._no_grad():
            dets = self._det.detect_faces(np.ascontiguousarray(bgr), self.threshold)
        rows = np.asarray(dets, dtype=np.float64)
        if rows.size == 0:
            return []
        # One row per face: x0, y0, x1, y1, score, then five 2-D keypoints (unused).
        rows = np.atleast_2d(rows)
        boxes = [Box(r[0], r[1], r[2], r[3], float(r[4])) for r in rows if len(r) >= 5]
        return sorted(boxes, key=lambda b: -b.score)

    def detect(self, image: np.ndarray, near: Box | None = None) -> list[Box]:
        rgb = _as_rgb(image)
        h, w = rgb.shape[:2]
        if near is None:
            small, scale = downscale(rgb, self.max_side)
            return [b.mapped(1.0 / scale) for b in self._faces(small[:, :, ::-1])]
        side = max(near.width, near.height) * self.search_scale
        cx, cy = near.center
        x0, y0 = max(0, int(np.floor(cx - side / 2))), max(0, int(np.floor(cy - side / 2)))
        x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        crop, scale = downscale(rgb[y0:y1, x0:x1], self.max_side)
        return [b.mapped(1.0 / scale, x0, y0) for b in self._faces(crop[:, :, ::-1])]

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        rgb = _as_rgb(image)
        h, w = rgb.shape[:2]
        x0, y0 = min(max(0, int(box.x0)), w - 1), min(max(0, int(box.y0)), h - 1)
        x1, y1 = (
            max(min(w, int(np.ceil(box.x1))), x0 + 1),
            max(min(h, int(np.ceil(box.y1))), y0 + 1),
        )
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1])  # facexlib works in BGR
        with self._no_grad():
            pts98 = np.asarray(self._align.get_landmarks(crop), dtype=np.float64).reshape(98, 2)
        return (wflw98_to_ibug68(pts98) + np.array([x0, y0], dtype=np.float32)).astype(np.float32)

    def confirm(self, image: np.ndarray, box: Box) -> bool:
        """Always true: at the paper's 0.97 threshold RetinaFace's detections need no second
        opinion."""
        return True

    def box_from_landmarks(self, points: np.ndarray) -> Box:
        """An approximation of RetinaFace's box: the points' width, from the chin up to a
        forehead line as far above the brows as a quarter of the brow-to-chin height.

        Not calibrated against RetinaFace (its weights are not available where this was
        written); the tracker confirms every frame with a real detection nearby, and re-fits
        from the detector's own box when the two disagree.
        """
        pts = np.asarray(points, dtype=np.float64)
        x0, x1 = float(pts[:, 0].min()), float(pts[:, 0].max())
        brow, chin = float(pts[17:27, 1].min()), float(pts[:, 1].max())
        top = brow - 0.25 * (chin - brow)
        return Box(x0, top, x1, chin)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = check_frame(image)
    return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB) if arr.ndim == 2 else arr
