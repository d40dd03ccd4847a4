"""The character panel's actions: an image in, its 68 points out, edited and saved.

Each function takes the editor's state (and files) and returns a new state, or raises a
:class:`~faceshot_core.errors.FaceshotUserError` whose one line the page shows: the same errors,
from the same functions, as ``faceshot landmarks`` and ``faceshot run`` on the command line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from faceshot.matching_api import MatchSettings, match_landmarks
from faceshot.pipeline import detect_reference
from faceshot.ui.editor import EditorState, state_for_image
from faceshot.ui.landmark_editing import (
    EditHistory,
    clamp_to_image,
    mirror_side,
    template_from_anchors,
)
from faceshot.ui.workspace import UploadLimits, check_upload, named_as_uploaded
from faceshot_core.errors import InvalidLandmarksError, NoFaceError
from faceshot_core.images import load_image, save_image
from faceshot_core.landmark_files import load_face, save_landmarks
from faceshot_core.sample_data import chelsea, chelsea_landmarks

CHARACTER_IMAGE = "character.png"  # the session's copy; downloads are named after the upload
EXPORT_FORMATS = {
    "faceshot JSON (.json)": ".json",
    "NumPy (.npy)": ".npy",
    "iBUG (.pts)": ".pts",
    "plain x y (.txt)": ".txt",
}


def load_character(upload: str | None, folder: Path, limits: UploadLimits) -> EditorState:
    """Read an uploaded image (a copy goes to the session folder; the upload is not touched)."""
    path = check_upload(upload, "image", limits)
    with named_as_uploaded(path):
        image = load_image(path)
    save_image(folder / CHARACTER_IMAGE, image)
    return state_for_image(image, name=path.stem)


def demo_character(folder: Path) -> EditorState:
    """scikit-image's cat with the landmarks the faceshot developers placed by hand."""
    image = chelsea()
    save_image(folder / CHARACTER_IMAGE, image)
    return state_for_image(image, chelsea_landmarks().points, name="cat")


def character_image(folder: Path) -> np.ndarray:
    path = folder / CHARACTER_IMAGE
    if not path.is_file():
        raise InvalidLandmarksError("upload a character image first")
    return load_image(path)


def detect(state: EditorState, folder: Path, detector: str = "dlib") -> EditorState:
    """The face detector's 68 points (human-like faces; others get the editor's hint)."""
    image = character_image(folder)
    try:
        face = detect_reference(image, detector=detector, source="the character image")
    except NoFaceError as exc:
        raise NoFaceError(
            f"{exc}; place the template with three clicks and drag the points, import a "
            "landmark file, or use the matcher"
        ) from None
    return state.with_points(face.points)


def match(state: EditorState, folder: Path) -> EditorState:
    """The appearance-guided matcher's points (needs its weights and a gallery)."""
    image = character_image(folder)
    result = match_landmarks(image, MatchSettings())
    return state.with_points(result.landmarks.points)


def start_template(state: EditorState) -> EditorState:
    """Enter the three-click mode (the page asks for each anchor in turn)."""
    if not state.has_image:
        raise InvalidLandmarksError("upload a character image first")
    return replace(state, mode="anchors", anchors=[])


def finish_template(state: EditorState) -> EditorState:
    """The template placed on the three clicked anchors, kept inside the image."""
    right_eye, left_eye, mouth = (np.asarray(a, dtype=np.float64) for a in state.anchors)
    points = template_from_anchors(right_eye, left_eye, mouth)
    return state.with_points(clamp_to_image(points, state.size))


def mirror(state: EditorState, keep: str) -> EditorState:
    """Copy one side of the face onto the other (``keep``: "image_left" or "image_right")."""
    points = state.landmarks().points
    if keep not in ("image_left", "image_right"):
        raise InvalidLandmarksError(f"cannot keep the side {keep!r}")
    mirrored = mirror_side(points, keep="image_left" if keep == "image_left" else "image_right")
    return state.with_points(clamp_to_image(mirrored, state.size))


def import_landmarks(state: EditorState, upload: str | None, limits: UploadLimits) -> EditorState:
    """Points from a landmark file (faceshot JSON, .npz, .npy, .pts, .txt) for this image."""
    path = check_upload(upload, "landmarks", limits)
    if not state.has_image:
        raise InvalidLandmarksError("upload the character image before its landmarks")
    with named_as_uploaded(path):
        face = load_face(path, image_size=state.size)
    return state.with_points(face.points)


def export_landmarks(state: EditorState, folder: Path, format_name: str) -> Path:
    """The edited points written as ``character.<suffix>`` in the chosen format."""
    suffix = EXPORT_FORMATS.get(format_name)
    if suffix is None:
        raise InvalidLandmarksError(f"unknown landmark format {format_name!r}")
    face = state.landmarks()
    out = folder / "export" / f"{state.name}{suffix}"
    out.parent.mkdir(exist_ok=True)
    return save_landmarks(out, face)


def save_for_run(state: EditorState, folder: Path) -> Path:
    """The points a run uses, written next to the character image."""
    return save_landmarks(folder / f"{state.name}.json", state.landmarks())


def record(history: EditHistory, state: EditorState) -> None:
    """Remember the state's points for undo (unchanged points are not recorded twice)."""
    points = state.points_array()
    if points is not None:
        history.record(points)


def undo(history: EditHistory, state: EditorState) -> EditorState:
    """The points before the last edit; an error line when there is nothing to undo."""
    previous = history.undo()
    if previous is None:
        raise InvalidLandmarksError("nothing to undo")
    return state.with_points(previous)
