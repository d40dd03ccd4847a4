"""The web app's character panel: the editor's state and what each button does with it.

Real images (scikit-image's cat and astronaut), real files and the real detector; no browser
(``tests/test_ui_browser.py`` drives the page itself).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faceshot
from faceshot.pipeline import detect_reference
from faceshot_core.errors import (
    FaceshotUserError,
    InvalidLandmarksError,
    LandmarkFileError,
    MediaError,
    NoFaceError,
)
from faceshot_core.images import load_image, save_image
from faceshot_core.landmark_files import load_face, save_landmarks
from faceshot_core.landmarks import OUTSIDE_TOLERANCE, FaceLandmarks
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.schema import NUM_POINTS

pytest.importorskip("gradio")

from faceshot.ui import character as chars  # only with gradio installed
from faceshot.ui.editor import (
    DISPLAY_SIDE,
    EditorState,
    display_url,
    state_for_image,
)
from faceshot.ui.landmark_editing import MIRROR_PAIRS, EditHistory, anchors_of
from faceshot.ui.workspace import UploadError, UploadLimits

CAT_SIZE = (451, 300)  # chelsea, width x height
ROUNDING = 1e-3  # the editor keeps points to 3 decimals


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return chelsea()


@pytest.fixture(scope="module")
def cat_points() -> np.ndarray:
    return chelsea_landmarks().points.astype(np.float64)


@pytest.fixture(scope="module")
def cat_state(cat: np.ndarray, cat_points: np.ndarray) -> EditorState:
    return state_for_image(cat, cat_points)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A session folder holding the cat as the character image."""
    out = tmp_path / "session"
    out.mkdir()
    save_image(out / chars.CHARACTER_IMAGE, chelsea())
    return out


def _decoded(url: str) -> Image.Image:
    head, _, data = url.partition(",")
    assert head == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


# --- the editor's state ---------------------------------------------------------------------


def test_state_round_trips_through_json(cat_state: EditorState, cat_points: np.ndarray) -> None:
    back = EditorState.from_json(cat_state.to_json())
    assert back == cat_state
    np.testing.assert_allclose(back.points_array(), cat_points, atol=ROUNDING)
    assert back.size == CAT_SIZE and back.has_image and back.mode == "edit"
    clicking = chars.start_template(cat_state)
    clicking = EditorState.from_json(
        json.dumps({**json.loads(clicking.to_json()), "anchors": [[10.5, 20.0], [30, 40]]})
    )
    assert clicking.mode == "anchors" and clicking.anchors == [[10.5, 20.0], [30.0, 40.0]]
    assert EditorState.from_json(clicking.to_json()) == clicking


def test_state_json_is_what_the_page_reads(cat_state: EditorState) -> None:
    raw = json.loads(cat_state.to_json())
    assert raw["width"] == 451 and raw["height"] == 300
    assert len(raw["points"]) == len(raw["labels"]) == len(raw["parts"]) == NUM_POINTS
    assert raw["labels"][36].startswith("37 right eye")
    assert len(raw["anchor_names"]) == 3 and raw["segments"]


_GOOD = {"image": "data:image/jpeg;base64,AAAA", "width": 451, "height": 300}
_POINTS = chelsea_landmarks().points.tolist()


def _state_json(**fields: object) -> str:
    return json.dumps({**_GOOD, **fields})


@pytest.mark.parametrize(
    ("value", "keeps_image"),
    [
        (None, False),
        ("", False),
        ("{", False),
        ("not json at all", False),
        ('{"width": "wide", "height": 300}', False),
        ('{"width": [1], "height": 300}', False),
        ('{"anchors": 5}', False),
        ('{"anchors": [[1, 2, 3]]}', False),
        ('{"anchors": [["a", "b"]]}', False),
        ('{"points": "abc"}', False),
        (_state_json(points=[[1, 2]]), True),
        (_state_json(points=[[1, 2, 3]] * NUM_POINTS), True),
        (_state_json(points=_POINTS[:-1]), True),
        (_state_json(points=[[float("nan"), 1.0], *_POINTS[1:]]), True),
        (_state_json(points=[[float("inf"), 1.0], *_POINTS[1:]]), True),
        (_state_json(points=[["x", "y"]] * NUM_POINTS), False),
        (_state_json(points=[[[1, 2]]] * NUM_POINTS), True),
        (_state_json(mode="drag"), True),
    ],
)
def test_malformed_state_from_the_page_is_safe(value: str | None, keeps_image: bool) -> None:
    state = EditorState.from_json(value)
    assert isinstance(state, EditorState)
    assert state.points is None
    assert state.mode == "edit" and len(state.anchors) <= 3
    assert state.has_image == keeps_image
    assert EditorState.from_json(state.to_json()) == state
    with pytest.raises(InvalidLandmarksError):
        state.landmarks()


def test_a_huge_anchors_list_keeps_three() -> None:
    value = _state_json(mode="anchors", anchors=[[float(i), 2.0 * i] for i in range(50_000)])
    state = EditorState.from_json(value)
    assert state.anchors == [[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]]
    assert state.mode == "anchors" and state.has_image


def test_non_finite_anchors_cannot_place_a_template() -> None:
    state = EditorState.from_json(
        _state_json(mode="anchors", anchors=[[float("nan"), 1], [50, 40], [45, 90]])
    )
    with pytest.raises(InvalidLandmarksError, match="finite") as info:
        chars.finish_template(state)
    _one_line(info.value)


@pytest.mark.parametrize(
    "value",
    ["[1, 2]", "null", '"text"', "7", '{"width": 1e400, "height": 300}', '{"height": Infinity}'],
)
def test_any_json_from_the_page_gives_a_state(value: str) -> None:
    state = EditorState.from_json(value)
    assert state == EditorState()


def test_display_copy_is_shrunk_but_size_and_points_are_the_originals(
    cat_points: np.ndarray,
) -> None:
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, size=(3000, 4000, 3), dtype=np.uint8)
    points = cat_points * 8.0  # inside 4000 x 3000
    state = state_for_image(big, points)
    shown = _decoded(state.image)
    assert shown.size == (DISPLAY_SIDE, 1200) == (1600, 1200)
    assert state.size == (4000, 3000)
    np.testing.assert_allclose(state.points_array(), points, atol=ROUNDING)
    assert state.landmarks().image_size == (4000, 3000)
    tall = _decoded(display_url(np.zeros((2000, 500, 3), np.uint8)))
    assert tall.size == (400, 1600)


def test_display_copy_of_a_small_image_keeps_its_size(cat: np.ndarray) -> None:
    shown = _decoded(display_url(cat))
    assert shown.size == CAT_SIZE
    difference = np.abs(np.asarray(shown.convert("RGB"), np.int16) - cat.astype(np.int16))
    assert difference.mean() < 4  # the cat, as JPEG


def test_landmarks_need_an_image_and_points(cat: np.ndarray, cat_state: EditorState) -> None:
    with pytest.raises(InvalidLandmarksError, match="upload a character image first"):
        EditorState().landmarks()
    with pytest.raises(InvalidLandmarksError, match="no landmarks yet") as info:
        state_for_image(cat).landmarks()
    assert "template" in _one_line(info.value)
    face = cat_state.landmarks(source="editor")
    assert isinstance(face, FaceLandmarks) and face.image_size == CAT_SIZE
    assert face.source == "editor"


# --- loading a character --------------------------------------------------------------------


def test_load_character_reads_the_upload_without_touching_it(
    tmp_path: Path, cat: np.ndarray
) -> None:
    (tmp_path / "upload").mkdir()
    upload = save_image(tmp_path / "upload" / "my cat.png", cat)
    before = upload.read_bytes(), upload.stat().st_mtime_ns
    session = tmp_path / "session"
    session.mkdir()
    state = chars.load_character(str(upload), session, UploadLimits())
    assert state.size == CAT_SIZE and state.has_image and state.points is None
    assert (upload.read_bytes(), upload.stat().st_mtime_ns) == before
    np.testing.assert_array_equal(load_image(session / chars.CHARACTER_IMAGE), cat)


def test_load_character_refuses_a_text_file_named_png(tmp_path: Path) -> None:
    upload = tmp_path / "gradio" / "0a1b2c" / "cat.png"
    upload.parent.mkdir(parents=True)
    upload.write_text("this is not an image\n")
    session = tmp_path / "session"
    session.mkdir()
    with pytest.raises(MediaError) as info:
        chars.load_character(str(upload), session, UploadLimits())
    text = _one_line(info.value)
    assert text.startswith("cat.png ") and str(tmp_path) not in text
    assert not (session / chars.CHARACTER_IMAGE).exists()


def test_load_character_refuses_by_suffix_and_size(tmp_path: Path, cat: np.ndarray) -> None:
    session = tmp_path / "session"
    session.mkdir()
    gif = tmp_path / "cat.gif"
    Image.fromarray(cat).save(gif)
    with pytest.raises(UploadError, match=r"^cat\.gif is not an image file"):
        chars.load_character(str(gif), session, UploadLimits())
    png = save_image(tmp_path / "cat.png", cat)
    with pytest.raises(UploadError, match=r"^cat\.png is .* MB; image uploads are limited"):
        chars.load_character(str(png), session, UploadLimits(image_mb=0.01))
    with pytest.raises(UploadError, match="no image file"):
        chars.load_character(None, session, UploadLimits())


def test_demo_character_is_the_cat_with_its_landmarks(
    tmp_path: Path, cat: np.ndarray, cat_points: np.ndarray
) -> None:
    state = chars.demo_character(tmp_path)
    assert state.size == CAT_SIZE
    np.testing.assert_allclose(state.points_array(), cat_points, atol=ROUNDING)
    np.testing.assert_array_equal(load_image(tmp_path / chars.CHARACTER_IMAGE), cat)


# --- points: detect, template, mirror -------------------------------------------------------


def test_detect_finds_the_astronauts_face(
    tmp_path: Path, astronaut: np.ndarray, astronaut_points: np.ndarray
) -> None:
    # astronaut_points (conftest, shared by the suite) is faceshot.detect_reference(astronaut)
    assert faceshot.detect_reference is detect_reference
    upload = save_image(tmp_path / "astronaut.png", astronaut)
    session = tmp_path / "session"
    session.mkdir()
    state = chars.load_character(str(upload), session, UploadLimits())
    detected = chars.detect(state, session)
    np.testing.assert_allclose(detected.points_array(), astronaut_points, atol=ROUNDING)
    assert detected.size == (512, 512) and detected.image == state.image


def test_detect_on_a_blank_image_points_to_the_template(tmp_path: Path) -> None:
    save_image(tmp_path / chars.CHARACTER_IMAGE, np.full((240, 320, 3), 128, np.uint8))
    state = state_for_image(np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(NoFaceError) as info:
        chars.detect(state, tmp_path)
    text = _one_line(info.value)
    assert "template" in text and "import a landmark file" in text


def test_detect_needs_a_character_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidLandmarksError, match="upload a character image first"):
        chars.detect(EditorState(), tmp_path)


def test_template_from_three_clicks(cat: np.ndarray, cat_points: np.ndarray) -> None:
    with pytest.raises(InvalidLandmarksError, match="upload a character image first"):
        chars.start_template(EditorState())
    clicking = chars.start_template(state_for_image(cat, cat_points))
    assert clicking.mode == "anchors" and clicking.anchors == []
    clicks = anchors_of(cat_points)  # where a user would click on the cat
    clicked = EditorState.from_json(
        json.dumps({**json.loads(clicking.to_json()), "anchors": clicks.tolist()})
    )
    placed = chars.finish_template(clicked)
    assert placed.mode == "edit" and placed.anchors == []
    points = placed.points_array()
    assert points is not None and points.shape == (NUM_POINTS, 2)
    np.testing.assert_allclose(anchors_of(points), clicks, atol=ROUNDING)
    assert not np.allclose(points, cat_points, atol=1.0)  # the template, not the old points
    placed.landmarks()  # a valid landmark set for the image


def test_a_template_larger_than_the_image_is_kept_in_the_allowed_range(cat: np.ndarray) -> None:
    # eyes at the image's edges, the mouth just below them: a face far wider than the image
    clicks = [[0.0, 150.0], [450.0, 150.0], [225.0, 299.0]]
    state = replace_anchors(chars.start_template(state_for_image(cat)), clicks)
    placed = chars.finish_template(state)
    points = placed.points_array()
    assert points is not None
    size = np.array(CAT_SIZE, dtype=float)
    low, high = -OUTSIDE_TOLERANCE * size, (1 + OUTSIDE_TOLERANCE) * size
    assert (points >= low - ROUNDING).all() and (points <= high + ROUNDING).all()
    assert np.isclose(points[:, 0].min(), low[0], atol=ROUNDING)  # the jaw was clamped
    assert np.isclose(points[:, 0].max(), high[0], atol=ROUNDING)
    placed.landmarks()  # a landmark set the rest of faceshot accepts


def replace_anchors(state: EditorState, anchors: list[list[float]]) -> EditorState:
    return EditorState.from_json(json.dumps({**json.loads(state.to_json()), "anchors": anchors}))


def test_mirror_copies_one_side_onto_the_other(cat_state: EditorState) -> None:
    first = [a for a, _ in MIRROR_PAIRS]
    second = [b for _, b in MIRROR_PAIRS]
    original = cat_state.points_array()
    assert original is not None
    left = chars.mirror(cat_state, "image_left").points_array()
    right = chars.mirror(cat_state, "image_right").points_array()
    assert left is not None and right is not None
    np.testing.assert_allclose(left[first], original[first], atol=ROUNDING)  # kept
    np.testing.assert_allclose(right[second], original[second], atol=ROUNDING)
    assert not np.allclose(left[second], original[second], atol=0.5)  # replaced
    again = chars.mirror(chars.mirror(cat_state, "image_left"), "image_left").points_array()
    np.testing.assert_allclose(again, left, atol=2 * ROUNDING)  # mirroring twice: no change
    with pytest.raises(InvalidLandmarksError, match="cannot keep the side 'middle'"):
        chars.mirror(cat_state, "middle")


def test_mirror_needs_points(cat: np.ndarray) -> None:
    with pytest.raises(InvalidLandmarksError, match="no landmarks yet"):
        chars.mirror(state_for_image(cat), "image_left")


# --- landmark files -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pts", ".json", ".npy", ".txt", ".npz"])
def test_import_landmarks_round_trip(
    tmp_path: Path, cat: np.ndarray, cat_points: np.ndarray, suffix: str
) -> None:
    path = save_landmarks(tmp_path / f"cat{suffix}", FaceLandmarks(cat_points, CAT_SIZE))
    state = chars.import_landmarks(state_for_image(cat), str(path), UploadLimits())
    np.testing.assert_allclose(state.points_array(), cat_points, atol=ROUNDING)
    assert state.size == CAT_SIZE and state.mode == "edit"


def test_import_landmarks_refusals(tmp_path: Path, cat: np.ndarray, cat_points: np.ndarray) -> None:
    good = save_landmarks(tmp_path / "cat.json", FaceLandmarks(cat_points, CAT_SIZE))
    with pytest.raises(InvalidLandmarksError, match="before its landmarks"):
        chars.import_landmarks(EditorState(), str(good), UploadLimits())
    csv = tmp_path / "cat.csv"
    csv.write_text("1,2\n")
    with pytest.raises(UploadError, match=r"^cat\.csv is not a landmarks file"):
        chars.import_landmarks(state_for_image(cat), str(csv), UploadLimits())
    bad = tmp_path / "upload" / "bad.pts"
    bad.parent.mkdir()
    bad.write_text("hello\n")
    with pytest.raises(LandmarkFileError) as info:
        chars.import_landmarks(state_for_image(cat), str(bad), UploadLimits())
    text = _one_line(info.value)
    assert text.startswith("bad.pts") and str(tmp_path) not in text
    far = save_landmarks(tmp_path / "far.json", FaceLandmarks(cat_points * 6, (2706, 1800)))
    with pytest.raises(FaceshotUserError) as info2:  # points far outside this image
        chars.import_landmarks(state_for_image(cat), str(far), UploadLimits())
    assert "far.json" in _one_line(info2.value) and str(tmp_path) not in str(info2.value)


@pytest.mark.parametrize(("format_name", "suffix"), list(chars.EXPORT_FORMATS.items()))
def test_export_landmarks_reloads_equal(
    tmp_path: Path, cat_state: EditorState, cat_points: np.ndarray, format_name: str, suffix: str
) -> None:
    edited = chars.mirror(cat_state, "image_right")
    out = chars.export_landmarks(edited, tmp_path, format_name)
    assert out == tmp_path / "export" / f"character{suffix}" and out.is_file()
    back = load_face(out, image_size=CAT_SIZE)
    np.testing.assert_allclose(back.points, edited.points_array(), atol=ROUNDING)
    assert back.image_size == CAT_SIZE
    # exporting again (another edit) replaces the file
    again = chars.export_landmarks(cat_state, tmp_path, format_name)
    np.testing.assert_allclose(load_face(again, image_size=CAT_SIZE).points, cat_points, atol=1e-3)


def test_export_refusals(tmp_path: Path, cat: np.ndarray, cat_state: EditorState) -> None:
    with pytest.raises(InvalidLandmarksError, match="unknown landmark format 'CSV'"):
        chars.export_landmarks(cat_state, tmp_path, "CSV")
    with pytest.raises(InvalidLandmarksError, match="no landmarks yet"):
        chars.export_landmarks(state_for_image(cat), tmp_path, "NumPy (.npy)")


def test_save_for_run(tmp_path: Path, cat: np.ndarray, cat_state: EditorState) -> None:
    path = chars.save_for_run(cat_state, tmp_path)
    assert path == tmp_path / "character.json"
    face = load_face(path)
    assert face.image_size == CAT_SIZE
    np.testing.assert_allclose(face.points, cat_state.points_array(), atol=1e-9)
    with pytest.raises(InvalidLandmarksError, match="no landmarks yet"):
        chars.save_for_run(state_for_image(cat), tmp_path / "other")


# --- undo -----------------------------------------------------------------------------------


def test_undo_steps_back_through_recorded_edits(cat: np.ndarray, cat_state: EditorState) -> None:
    history = EditHistory()
    chars.record(history, state_for_image(cat))  # no points: nothing to record
    assert len(history) == 0
    chars.record(history, cat_state)
    chars.record(history, cat_state)  # unchanged points are recorded once
    assert len(history) == 1
    mirrored = chars.mirror(cat_state, "image_left")
    chars.record(history, mirrored)
    moved = np.array(mirrored.points_array())
    moved[30] += (5.0, -3.0)  # a dragged nose tip
    dragged = mirrored.with_points(moved)
    chars.record(history, dragged)
    assert len(history) == 3
    back = chars.undo(history, dragged)
    np.testing.assert_allclose(back.points_array(), mirrored.points_array())
    back = chars.undo(history, back)
    np.testing.assert_allclose(back.points_array(), cat_state.points_array())
    assert back.image == cat_state.image and back.size == CAT_SIZE
    with pytest.raises(InvalidLandmarksError, match="nothing to undo"):
        chars.undo(history, back)
