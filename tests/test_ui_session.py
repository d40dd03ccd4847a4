"""The web app's motion controls, driving preview and run, and the page's handlers and errors.

The driving clip is the app's own demo clip (the astronaut, 48 frames, made once per module);
runs use the CPU ``warp`` backend on a few frames of it, with the cat as the character.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from faceshot.settings import RunSettings, SettingsError
from faceshot_core.errors import FaceshotError, FaceshotUserError, MediaError, NoFaceError
from faceshot_core.images import save_image
from faceshot_core.landmark_files import load_sequence, save_landmarks
from faceshot_core.landmarks import DEFAULT_FPS, LandmarkSequence
from faceshot_core.progress import ProgressEvent
from faceshot_core.sample_data import chelsea, chelsea_landmarks
from faceshot_core.schema import PARTS
from faceshot_core.video import probe_video

gr = pytest.importorskip("gradio")

from faceshot.ui import app as app_module  # noqa: E402  (only with gradio installed)
from faceshot.ui import session_run  # noqa: E402
from faceshot.ui.app import Handlers, build_app, page_errors, progress_sink  # noqa: E402
from faceshot.ui.character import CHARACTER_IMAGE, demo_character  # noqa: E402
from faceshot.ui.controls import (  # noqa: E402
    MotionControls,
    backend_description,
    backend_names,
    motion_controls,
    option_specs,
)
from faceshot.ui.session_run import (  # noqa: E402
    DEMO_FRAMES,
    backend_device,
    demo_clip,
    driving_upload,
    preview_driving,
    run_job,
)
from faceshot.ui.workspace import GpuQueue, UploadError, UploadLimits, Workspace  # noqa: E402

RUN_FRAMES = 6
WAIT_S = 5.0


class NoGpu(GpuQueue):
    """A queue a CPU run must never use."""

    def turn(self, on_wait: Any = None) -> Any:
        raise AssertionError("a CPU run waited for the GPU")


def _progress(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``gr.Progress`` (called with a value and ``desc=...``)."""


# --- motion controls ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def controls() -> MotionControls:
    with gr.Blocks():
        return motion_controls()


def _values(controls: MotionControls, **changes: Any) -> list[Any]:
    """The page's values, as the inputs start, with some changed by name.

    Names: ``parts``, a part's name (its strength), a run field, ``face`` or ``device``.
    """
    names = ["parts", *controls.strengths, *(s.name for s in controls.run_specs), "face", "device"]
    assert len(names) == len(controls.inputs)
    values = [component.value for component in controls.inputs]
    for name, value in changes.items():
        values[names.index(name)] = value
    return values


def test_controls_inputs_follow_the_values_order(controls: MotionControls) -> None:
    inputs = controls.inputs
    assert inputs[0] is controls.parts
    assert inputs[1 : 1 + len(PARTS)] == list(controls.strengths.values())
    assert list(controls.strengths) == list(PARTS)
    assert inputs[-2:] == [controls.face, controls.device]
    assert {s.name for s in controls.run_specs} == {
        "head_motion", "head_translation", "smoothing", "max_frames", "seed",
    }  # fmt: skip
    assert controls.parts.value == list(PARTS)


def test_untouched_controls_are_the_default_settings(controls: MotionControls) -> None:
    settings = controls.settings("warp", _values(controls))
    assert settings == RunSettings(backend="warp")
    assert settings.parts is None and settings.motion is None
    assert settings.face == "auto" and settings.device == "auto"


def test_parts_and_strengths(controls: MotionControls) -> None:
    shuffled = list(reversed(PARTS))  # every part, in another order: still "all"
    assert controls.settings("warp", _values(controls, parts=shuffled)).parts is None
    subset = controls.settings("warp", _values(controls, parts=["eyes", "mouth"]))
    assert subset.parts == ("eyes", "mouth")
    assert controls.settings("warp", _values(controls, parts=[])).parts == ()
    strong = controls.settings("warp", _values(controls, mouth=1.5, eyes=0.0, nose=1.0))
    assert strong.motion == {"mouth": 1.5, "eyes": 0.0}


def test_run_fields_come_back_as_settings(controls: MotionControls) -> None:
    settings = controls.settings(
        "landmarks",
        _values(controls, max_frames=12.0, head_motion=2.0, smoothing="", seed=7),
    )
    assert settings.backend == "landmarks"
    assert settings.max_frames == 12 and isinstance(settings.max_frames, int)
    assert settings.head_motion == 2.0 and settings.seed == 7
    assert settings.smoothing is None  # the emptied dropdown: raw detections


@pytest.mark.parametrize(
    ("text", "face"),
    [("auto", "auto"), ("", "auto"), (None, "auto"), ("largest", "largest"), ("1", 1),
     ("-1", -1), ("320,180", (320.0, 180.0)), (" 12.5 , 40 ", (12.5, 40.0)), ("AUTO", "auto")],
)  # fmt: skip
def test_face_choice_text(controls: MotionControls, text: str | None, face: object) -> None:
    assert controls.settings("warp", _values(controls, face=text)).face == face


@pytest.mark.parametrize("text", ["the left one", "1,2,3", "nan,1", "1e400,2", "1.5"])
def test_bad_face_text_is_one_line(controls: MotionControls, text: str) -> None:
    with pytest.raises(FaceshotUserError) as info:
        controls.settings("warp", _values(controls, face=text))
    message = str(info.value)
    assert "\n" not in message and "face choice" in message


def test_bad_run_value_is_one_line_naming_the_setting(controls: MotionControls) -> None:
    with pytest.raises(SettingsError) as info:
        controls.settings("warp", _values(controls, head_motion=9.0))
    assert "\n" not in str(info.value) and "head_motion" in str(info.value)
    with pytest.raises(SettingsError, match="max_frames"):
        controls.settings("warp", _values(controls, max_frames=0.0))
    with pytest.raises(SettingsError, match="max_frames"):
        controls.settings("warp", _values(controls, max_frames=2.5))


def test_backends_and_their_options() -> None:
    names = backend_names()
    assert {"warp", "landmarks"} <= set(names)
    assert [s.name for s in option_specs("warp")] == ["mouth_interior"]
    assert option_specs("warp")[0].kind == "checkbox"
    assert backend_description("warp").startswith("**warp**: ")
    for name in ("warp", "landmarks"):
        for spec in option_specs(name):
            assert spec.name and spec.label


# --- the driving clip and its preview -------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("ui-session"))


@pytest.fixture(scope="module")
def clip(workspace: Workspace) -> Path:
    return demo_clip(workspace.shared())


@pytest.fixture(scope="module")
def preview(workspace: Workspace, clip: Path) -> session_run.DrivingPreview:
    return preview_driving(
        clip, workspace.session("preview"), cache_dir=workspace.shared() / "driving-cache"
    )


def test_demo_clip_is_made_once(workspace: Workspace, clip: Path) -> None:
    stamp = clip.stat().st_mtime_ns
    assert demo_clip(workspace.shared()) == clip
    assert clip.stat().st_mtime_ns == stamp
    info = probe_video(clip)
    assert info.frame_count == DEMO_FRAMES == 48 and info.fps == pytest.approx(24.0)
    assert info.size == (512, 512)


def test_demo_clip_made_once_by_concurrent_sessions(
    tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Path] = []
    calls: list[int] = []

    def counted(path: Path, frames: int) -> None:
        calls.append(frames)
        path.write_bytes(clip.read_bytes())  # the real clip, without making it again

    monkeypatch.setattr(session_run, "write_driving_clip", counted)
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        made.append(demo_clip(tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert calls == [DEMO_FRAMES] and made == [tmp_path / session_run.DEMO_CLIP] * 4


def test_preview_draws_the_landmarks_on_every_frame(
    preview: session_run.DrivingPreview, clip: Path, workspace: Workspace
) -> None:
    assert preview.video == clip
    assert preview.overlay == workspace.session("preview") / "driving_landmarks.mp4"
    overlay = probe_video(preview.overlay)
    assert overlay.frame_count == 48 and overlay.fps == pytest.approx(24.0)
    assert preview.summary == "48 frames at 24 fps (2.0 s); a face found in every frame"
    assert any((workspace.shared() / "driving-cache").iterdir())  # the run will reuse it


def test_summary_counts_frames_without_a_face() -> None:
    points = np.repeat(chelsea_landmarks().points[None], 48, axis=0)
    lost = np.zeros(48, dtype=bool)
    lost[[3, 4, 9]] = True
    sequence = LandmarkSequence(points, (451, 300), fps=24.0, interpolated=lost)
    assert session_run._summary(sequence) == (
        "48 frames at 24 fps (2.0 s); no face found in 3 frames (drawn grey: filled in from "
        "neighbours)"
    )
    unknown_fps = LandmarkSequence(points[:30], (451, 300))
    assert session_run._summary(unknown_fps) == (
        f"30 frames at {DEFAULT_FPS:g} fps ({30 / DEFAULT_FPS:.1f} s); a face found in every frame"
    )


def test_driving_upload_accepts_a_video_and_refuses_a_text_file(tmp_path: Path, clip: Path) -> None:
    assert driving_upload(str(clip), UploadLimits()) == clip
    fake = tmp_path / "gradio" / "3f2e1d" / "clip.mp4"
    fake.parent.mkdir(parents=True)
    fake.write_text("not a video\n")
    with pytest.raises(MediaError) as info:
        driving_upload(str(fake), UploadLimits())
    text = str(info.value)
    assert text.startswith("clip.mp4") and "\n" not in text and str(tmp_path) not in text
    with pytest.raises(UploadError, match=r"^clip\.txt is not a video file"):
        driving_upload(str(fake.with_suffix(".txt")), UploadLimits())
    with pytest.raises(UploadError, match=r"limited to 0\.1 MB"):
        driving_upload(str(clip), UploadLimits(video_mb=0.1))


def test_a_still_image_named_mp4_is_refused(tmp_path: Path) -> None:
    still = tmp_path / "still.mp4"
    save_image(tmp_path / "still.png", chelsea()).rename(still)
    with pytest.raises(MediaError) as info:
        driving_upload(str(still), UploadLimits())
    assert str(info.value).startswith("still.mp4") and str(tmp_path) not in str(info.value)


# --- the run --------------------------------------------------------------------------------


def test_backend_device() -> None:
    assert backend_device("warp", "auto") == "cpu"
    assert backend_device("landmarks", "auto") == "cpu"


@pytest.fixture
def character(tmp_path: Path) -> tuple[Path, Path]:
    image = save_image(tmp_path / "character.png", chelsea())
    landmarks = save_landmarks(tmp_path / "character.json", chelsea_landmarks())
    return image, landmarks


def test_run_job_with_warp_writes_the_results(
    tmp_path: Path, character: tuple[Path, Path], clip: Path, preview: Any, workspace: Workspace
) -> None:
    image, landmarks = character
    folder = tmp_path / "run-0001"
    folder.mkdir()
    waits: list[int] = []
    settings = RunSettings(
        backend="warp", max_frames=RUN_FRAMES, cache_dir=workspace.shared() / "driving-cache"
    )
    result = run_job(image, landmarks, clip, folder, settings=settings, options={},
                     gpu=NoGpu(), waiting=waits.append)  # fmt: skip
    assert result.output == folder / "character.mp4"
    assert result.landmarks_file.parent == folder and result.landmarks_file.suffix == ".npz"
    assert result.compare is not None and result.compare.parent == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [result.output.name, result.landmarks_file.name, result.compare.name]
    )
    assert result.frames == RUN_FRAMES and result.backend == "warp" and result.device == "cpu"
    video = probe_video(result.output)
    assert video.frame_count == RUN_FRAMES and video.size == (452, 300)  # even width for H.264
    assert probe_video(result.compare).frame_count == RUN_FRAMES
    assert len(load_sequence(result.landmarks_file)) == RUN_FRAMES
    assert result.reference_source == "file"
    np.testing.assert_allclose(
        result.reference_landmarks.points, chelsea_landmarks().points, atol=1e-3
    )
    assert waits == []


def test_gpu_runs_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, character: tuple[Path, Path]
) -> None:
    """A run on the GPU waits in the queue and says how many jobs are ahead (no GPU needed)."""
    ran: list[Path] = []
    monkeypatch.setattr(session_run, "backend_device", lambda backend, device: "cuda")
    monkeypatch.setattr(
        session_run, "_run", lambda character, driving, output, *a: ran.append(output)
    )
    gpu = GpuQueue()
    holding, release = threading.Event(), threading.Event()

    def other_job() -> None:
        with gpu.turn():
            holding.set()
            release.wait(WAIT_S)

    other = threading.Thread(target=other_job, daemon=True)
    other.start()
    assert holding.wait(WAIT_S)
    waits: list[int] = []

    def waiting(ahead: int) -> None:
        waits.append(ahead)
        assert ran == []  # not started while the other job holds the GPU
        release.set()

    image, landmarks = character
    run_job(image, landmarks, tmp_path / "clip.mp4", tmp_path, settings=RunSettings(),
            options={}, gpu=gpu, waiting=waiting)  # fmt: skip
    other.join(WAIT_S)
    assert waits == [1] and ran == [tmp_path / "character.mp4"] and gpu.waiting == 0


# --- the page -------------------------------------------------------------------------------


def test_build_app(tmp_path: Path) -> None:
    app = build_app(Workspace(tmp_path), UploadLimits(image_mb=1.0), GpuQueue())
    assert isinstance(app, gr.Blocks)
    ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
    expected = {"editor", "run", "backend", "demo-cat", "demo-clip", "undo", "export",
                "character-upload", "driving-upload", "result-video", "compare-video"}  # fmt: skip
    assert expected <= ids
    assert len(app.fns) > 10


def test_page_errors_shows_a_users_error_as_it_is() -> None:
    @page_errors
    def handler(value: str) -> str:
        raise NoFaceError(f"no face found in {value}")

    with pytest.raises(gr.Error) as info:
        handler("the character image")
    assert info.value.message == "no face found in the character image"
    assert info.value.title == "Cannot do that"


def test_page_errors_shortens_and_logs_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    @page_errors
    def broken(x: int) -> float:
        raise ZeroDivisionError(f"division by zero at {x}\nsecret detail on line two")

    with caplog.at_level(logging.ERROR, logger="faceshot.ui"), pytest.raises(gr.Error) as info:
        broken(3)
    message = info.value.message
    assert message.startswith("internal error (ZeroDivisionError: division by zero at 3)")
    assert "secret" not in message and "\n" not in message
    assert info.value.title == "Internal error"
    records = [r for r in caplog.records if r.name == "faceshot.ui"]
    assert len(records) == 1 and "broken" in records[0].getMessage()
    assert records[0].exc_info is not None and records[0].exc_info[0] is ZeroDivisionError


def test_page_errors_shows_a_backend_failure_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    @page_errors
    def plugin() -> None:
        raise FaceshotError("backend 'mofa' failed to load")

    with caplog.at_level(logging.ERROR, logger="faceshot.ui"), pytest.raises(gr.Error) as info:
        plugin()
    assert info.value.message == "backend 'mofa' failed to load"
    assert info.value.title == "Failed"
    assert any(r.exc_info for r in caplog.records if r.name == "faceshot.ui")


def test_page_errors_passes_values_and_gradio_errors_through() -> None:
    original = gr.Error("already a page error")

    @page_errors
    def handler(value: int, *, fail: bool = False) -> int:
        if fail:
            raise original
        return value * 2

    assert handler(21) == 42
    with pytest.raises(gr.Error) as info:
        handler(1, fail=True)
    assert info.value is original


def test_page_errors_keeps_the_signature_gradio_reads(tmp_path: Path) -> None:
    h = Handlers(Workspace(tmp_path), UploadLimits(), GpuQueue())
    for method in (h.upload_character, h.detect, h.export, h.driving):
        wrapped = page_errors(method)
        assert inspect.signature(wrapped) == inspect.signature(method)
        assert "request" in inspect.signature(wrapped).parameters
        assert wrapped.__name__ == method.__name__
    assert list(inspect.signature(page_errors(h.driving)).parameters) == [
        "upload", "request", "progress",
    ]  # fmt: skip


def test_progress_sink_feeds_the_progress_bar() -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    sink = progress_sink(lambda value, **kw: calls.append((value, kw)))  # type: ignore[arg-type]
    sink(ProgressEvent("detecting driving landmarks", 3, 48))
    assert calls == [((3, 48), {"desc": "detecting driving landmarks", "unit": "frames"})]


# --- the handlers, without a browser --------------------------------------------------------


def test_handlers_run_needs_a_driving_video(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    h = Handlers(ws, UploadLimits(), NoGpu())
    request = SimpleNamespace(session_hash="abc")
    state = demo_character(ws.session("abc"))
    with pytest.raises(UploadError, match="choose a driving video first"):
        h.run(state.to_json(), None, RunSettings(), {}, request, _progress)  # type: ignore[arg-type]
    empty = Handlers(ws, UploadLimits(), NoGpu())
    with pytest.raises(FaceshotUserError, match="upload a character image first"):
        empty.run("", str(tmp_path / "clip.mp4"), RunSettings(), {}, request, _progress)  # type: ignore[arg-type]


def test_handlers_run_wires_the_editor_and_the_cache_into_run_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Run button: the editor's points saved, a new run folder, the preview's cache."""
    ws = Workspace(tmp_path)
    gpu = GpuQueue()
    h = Handlers(ws, UploadLimits(), gpu)
    calls: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []

    def fake_run_job(character: Path, landmarks: Path, driving: Path, folder: Path,
                     **kw: Any) -> Any:  # fmt: skip
        calls.append(dict(kw, character=character, landmarks=landmarks, driving=driving,
                          folder=folder))  # fmt: skip
        kw["waiting"](2)
        return SimpleNamespace(
            output=folder / "character.mp4", compare=folder / "character_compare.mp4",
            landmarks_file=folder / "character_landmarks.npz", frames=4, fps=24.0,
            backend="warp", device="cpu", timings={"total": 1.25},
        )  # fmt: skip

    monkeypatch.setattr(app_module, "run_job", fake_run_job)
    request = SimpleNamespace(session_hash="page1")
    value, _ = h.demo_character(request)  # type: ignore[arg-type]
    session = ws.session("page1")
    settings = RunSettings(backend="warp", max_frames=4)

    def progress(value: Any, **kw: Any) -> None:
        shown.append(kw)

    out = h.run(value, str(tmp_path / "clip.mp4"), settings, {"mouth_interior": False},
                request, progress)  # type: ignore[arg-type]  # fmt: skip
    (call,) = calls
    assert call["character"] == session / CHARACTER_IMAGE
    # the demo cat's files are named after it
    assert call["landmarks"] == session / "cat.json" and call["landmarks"].is_file()
    assert call["name"] == "cat"
    assert call["driving"] == tmp_path / "clip.mp4"
    assert call["folder"].parent == session and call["folder"].name.startswith("run-")
    assert call["folder"].is_dir() and not any(call["folder"].iterdir())
    assert call["settings"] == settings.model_copy(
        update={"cache_dir": ws.shared() / "driving-cache"}
    )
    assert call["options"] == {"mouth_interior": False} and call["gpu"] is gpu
    assert shown == [{"desc": "waiting for the GPU (2 job(s) ahead)"}]
    folder = call["folder"]
    files = [str(folder / "character.mp4"), str(folder / "character_landmarks.npz"),
             str(session / "cat.json")]  # fmt: skip
    assert out == (
        str(folder / "character.mp4"), str(folder / "character_compare.mp4"), files,
        "4 frames at 24 fps by **warp** on cpu in 1.2 s", "",
    )  # fmt: skip
    h.run(value, str(tmp_path / "clip.mp4"), settings, {}, request, progress)  # type: ignore[arg-type]
    assert calls[1]["folder"] != folder  # earlier results stay playable


def test_handlers_edited_places_the_template_on_the_third_click(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    h = Handlers(ws, UploadLimits(), NoGpu())
    request = SimpleNamespace(session_hash="t")
    value, history = h.demo_character(request)  # type: ignore[arg-type]
    clicking = h.start_template(value)
    raw = json.loads(clicking)
    raw["anchors"] = [[180.0, 120.0], [260.0, 120.0]]
    skipped, same = h.edited(json.dumps(raw), history)
    assert same is history and len(history) == 1 and not isinstance(skipped, str)
    raw["anchors"].append([220.0, 200.0])
    placed, history = h.edited(json.dumps(raw), history)
    assert isinstance(placed, str) and len(history) == 2
    undone, history = h.undo(placed, history)
    assert json.loads(undone)["points"] == json.loads(value)["points"]
