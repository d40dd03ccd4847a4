"""The landmark editor: a Gradio ``HTML`` component whose value is the editor's state as JSON.

Gradio has no component for dragging points over an image, and the field's apps (LivePortrait's
retargeting sliders, ComfyUI nodes) offer none either; users of non-human characters ask for
exactly this.  The browser half (``static/landmark_editor.js``) draws the image and the 68 points
in an SVG whose coordinates are the image's own pixels, lets the user drag a point or click the
three anchors of the template, and sends the state back when an edit is finished.  Everything
else (the template, mirroring, undo, files) is Python, in :mod:`faceshot.ui.landmark_editing`.

The state carries a display copy of the image (a JPEG data URL, at most :data:`DISPLAY_SIDE`
pixels on its long side): large images stay light in the page, while ``width``/``height`` and the
points stay those of the original image.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import Any, Literal

import gradio as gr
import numpy as np
from PIL import Image

from faceshot.ui.landmark_editing import ANCHOR_NAMES, point_labels
from faceshot_core.errors import InvalidLandmarksError
from faceshot_core.landmarks import FaceLandmarks
from faceshot_core.schema import CONNECTIONS, NUM_POINTS, part_of

#: Long side of the image shown in the page (the points keep the original's pixels).
DISPLAY_SIDE = 1600
JPEG_QUALITY = 90

Mode = Literal["edit", "anchors"]
DEFAULT_NAME = "character"


def safe_name(stem: str) -> str:
    """A file-name stem from an upload's name: letters, digits, ``-`` and ``_``, 60 at most."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:60]
    return cleaned or DEFAULT_NAME


@dataclass(frozen=True)
class EditorState:
    """What the page shows: the image, its size, the points (or none yet) and the mode."""

    image: str = ""  # data URL of the display copy
    name: str = DEFAULT_NAME  # the uploaded file's stem: what the downloads are called
    width: int = 0
    height: int = 0
    points: list[list[float]] | None = None
    mode: Mode = "edit"
    anchors: list[list[float]] = field(default_factory=list)
    labels: tuple[str, ...] = field(default_factory=point_labels)
    parts: tuple[str, ...] = tuple(part_of(i) for i in range(NUM_POINTS))
    segments: tuple[tuple[int, int], ...] = CONNECTIONS
    anchor_names: tuple[str, ...] = ANCHOR_NAMES

    @property
    def has_image(self) -> bool:
        return bool(self.image) and self.width > 0 and self.height > 0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def points_array(self) -> np.ndarray | None:
        return None if self.points is None else np.asarray(self.points, dtype=np.float64)

    def with_points(self, points: np.ndarray | None) -> EditorState:
        listed = None if points is None else np.asarray(points, dtype=float).round(3).tolist()
        return replace(self, points=listed, mode="edit", anchors=[])

    def landmarks(self, source: str = "landmark editor") -> FaceLandmarks:
        """The edited points as landmarks of the image; a clear error when there are none."""
        points = self.points_array()
        if not self.has_image:
            raise InvalidLandmarksError("upload a character image first")
        if points is None:
            raise InvalidLandmarksError(
                "the character has no landmarks yet: detect, match or import them, or place "
                "the template with three clicks"
            )
        return FaceLandmarks(points, self.size, source=source)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, value: str | None) -> EditorState:
        """The state the page sent back; anything malformed is an empty editor, not a crash."""
        if not value:
            return cls()
        try:
            raw = json.loads(value)
            if not isinstance(raw, dict):
                return cls()
            points = raw.get("points")
            if points is not None:
                arr = np.asarray(points, dtype=np.float64)
                if arr.shape != (NUM_POINTS, 2) or not np.isfinite(arr).all():
                    points = None
            anchors = [[float(x), float(y)] for x, y in raw.get("anchors") or []][:3]
            mode: Mode = "anchors" if raw.get("mode") == "anchors" else "edit"
            return cls(
                image=str(raw.get("image") or ""),
                name=safe_name(str(raw.get("name") or DEFAULT_NAME)),
                width=int(raw.get("width") or 0),
                height=int(raw.get("height") or 0),
                points=points,
                mode=mode,
                anchors=anchors,
            )
        except (TypeError, ValueError, OverflowError):
            return cls()


def display_url(image: np.ndarray) -> str:
    """A JPEG data URL of ``image`` (RGB uint8), shrunk to :data:`DISPLAY_SIDE` if larger."""
    pil = Image.fromarray(image)
    scale = DISPLAY_SIDE / max(pil.size)
    if scale < 1:
        pil = pil.resize(
            (max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
            Image.Resampling.LANCZOS,
        )
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def state_for_image(
    image: np.ndarray, points: np.ndarray | None = None, name: str = DEFAULT_NAME
) -> EditorState:
    """A fresh editor on ``image`` (RGB uint8), with ``points`` when they are known."""
    height, width = image.shape[:2]
    state = EditorState(image=display_url(image), name=safe_name(name), width=width, height=height)
    return state.with_points(points)


def _static(name: str) -> str:
    return (resources.files("faceshot.ui") / "static" / name).read_text(encoding="utf-8")


def landmark_editor(**kwargs: Any) -> gr.HTML:
    """The editor component (its value: :meth:`EditorState.to_json`); fires ``input`` on edits."""
    return gr.HTML(
        value=EditorState().to_json(),
        html_template='<div class="fs-editor"></div><div class="fs-status"></div>',
        css_template=_static("landmark_editor.css"),
        js_on_load=_static("landmark_editor.js"),
        **kwargs,
    )
