"""``faceshot ui``: the page and what each of its buttons does.

Three steps, as in every app of this field: the character (an image and its 68 points, edited
in :mod:`faceshot.ui.editor`), the driving clip (its detected landmarks shown on it), then the
motion settings, a backend and its options, and the run.  Every handler goes through
:func:`page_errors`: a user's mistake shows the same one line the CLI prints, anything else a
short line in the page while the traceback goes to the server's log, never to the browser.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from faceshot.settings import RunSettings
from faceshot.ui import character as chars
from faceshot.ui.controls import (
    backend_description,
    backend_names,
    motion_controls,
    render_options,
)
from faceshot.ui.editor import EditorState, landmark_editor
from faceshot.ui.landmark_editing import EditHistory
from faceshot.ui.session_run import (
    demo_clip,
    driving_upload,
    measure,
    preview_driving,
    run_job,
)
from faceshot.ui.workspace import (
    IMAGE_SUFFIXES,
    LANDMARK_SUFFIXES,
    VIDEO_SUFFIXES,
    GpuQueue,
    UploadError,
    UploadLimits,
    Workspace,
)
from faceshot_core.errors import FaceshotError, FaceshotUserError
from faceshot_core.progress import ProgressEvent, ProgressSink
from faceshot_core.video.reading import first_line

logger = logging.getLogger("faceshot.ui")
F = TypeVar("F", bound=Callable[..., Any])

INTRO = (
    "# faceshot\n"
    "Bring any character to life from a driving video: give the character's 68 landmarks "
    "(detect them, or place the template with three clicks and drag the points), pick a "
    "driving clip, and run."
)


def page_errors(fn: F) -> F:
    """Show errors as one line in the page: the user's own, or a short internal one."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except FaceshotUserError as exc:
            raise gr.Error(str(exc), title="Cannot do that", print_exception=False) from None
        except FaceshotError as exc:  # a backend or plugin failed: its line, traceback logged
            logger.error("faceshot ui: %s", exc, exc_info=True)
            raise gr.Error(str(exc), title="Failed", print_exception=False) from None
        except Exception as exc:
            logger.exception("faceshot ui: unexpected error in %s", fn.__name__)
            raise gr.Error(
                f"internal error ({type(exc).__name__}: {first_line(exc)}); the server's log "
                "has the details",
                title="Internal error",
                print_exception=False,
            ) from None

    return wrapper  # type: ignore[return-value]


def progress_sink(progress: gr.Progress) -> ProgressSink:
    """faceshot's progress events as the page's progress bar."""

    def sink(event: ProgressEvent) -> None:
        progress((event.done, event.total), desc=event.stage, unit=event.unit)

    return sink


def take_file(path: str | None) -> tuple[None, str | None]:
    """Empty the drop zone and pass its file on (see the upload events in :func:`build_app`)."""
    return None, path


class Handlers:
    """What the page's events do, bound to the app's workspace, limits and GPU queue."""

    def __init__(self, workspace: Workspace, limits: UploadLimits, gpu: GpuQueue) -> None:
        self.workspace, self.limits, self.gpu = workspace, limits, gpu

    def folder(self, request: gr.Request | None) -> Path:
        return self.workspace.session(getattr(request, "session_hash", None))

    def _edited(self, state: EditorState, history: EditHistory) -> tuple[str, EditHistory]:
        chars.record(history, state)
        return state.to_json(), history

    def upload_character(self, upload: str | None, request: gr.Request) -> tuple[str, EditHistory]:
        state = chars.load_character(upload, self.folder(request), self.limits)
        return state.to_json(), EditHistory()

    def demo_character(self, request: gr.Request) -> tuple[str, EditHistory]:
        return self._edited(chars.demo_character(self.folder(request)), EditHistory())

    def detect(self, value: str, history: EditHistory, request: gr.Request) -> Any:
        state = chars.detect(EditorState.from_json(value), self.folder(request))
        return self._edited(state, history)

    def match(self, value: str, history: EditHistory, request: gr.Request) -> Any:
        state = chars.match(EditorState.from_json(value), self.folder(request))
        return self._edited(state, history)

    def start_template(self, value: str) -> str:
        return chars.start_template(EditorState.from_json(value)).to_json()

    def edited(self, value: str, history: EditHistory) -> Any:
        """The page finished an edit: a drag (recorded for undo) or the template's third click."""
        state = EditorState.from_json(value)
        if state.mode == "anchors":
            if len(state.anchors) < 3:
                return gr.skip(), history
            return self._edited(chars.finish_template(state), history)
        chars.record(history, state)
        return gr.skip(), history

    def undo(self, value: str, history: EditHistory) -> Any:
        return chars.undo(history, EditorState.from_json(value)).to_json(), history

    def mirror(self, keep: str) -> Callable[[str, EditHistory], Any]:
        def handler(value: str, history: EditHistory) -> Any:
            return self._edited(chars.mirror(EditorState.from_json(value), keep), history)

        return handler

    def import_landmarks(self, upload: str | None, value: str, history: EditHistory) -> Any:
        state = chars.import_landmarks(EditorState.from_json(value), upload, self.limits)
        return self._edited(state, history)

    def export(self, value: str, format_name: str, request: gr.Request) -> str:
        state = EditorState.from_json(value)
        return str(chars.export_landmarks(state, self.folder(request), format_name))

    def driving(
        self, upload: str | None, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> tuple[str, str, str]:
        video = driving_upload(upload, self.limits)
        return self._preview(video, request, progress)

    def demo_driving(
        self, request: gr.Request, progress: gr.Progress = gr.Progress()
    ) -> tuple[str, str, str]:
        progress(None, desc="making the demo clip")
        return self._preview(demo_clip(self.workspace.shared()), request, progress)

    def _preview(
        self, video: Path, request: gr.Request, progress: gr.Progress
    ) -> tuple[str, str, str]:
        preview = preview_driving(
            video, self.folder(request), cache_dir=self.workspace.driving_cache(),
            progress=progress_sink(progress),
        )  # fmt: skip
        return str(preview.video), str(preview.overlay), preview.summary

    def run(
        self,
        value: str,
        driving: str | None,
        settings: RunSettings,
        options: dict[str, Any],
        request: gr.Request,
        progress: gr.Progress,
        measure_result: bool = False,
    ) -> tuple[str, str, list[str], str, str]:
        """``faceshot.run`` on the editor's points: the videos, downloads, a summary line and,
        when asked, the result's figures (``faceshot eval``)."""
        folder = self.folder(request)
        state = EditorState.from_json(value)
        landmarks = chars.save_for_run(state, folder)
        if not driving:
            raise UploadError("choose a driving video first (upload one or use the demo clip)")
        cfg = settings.model_copy(update={"cache_dir": self.workspace.driving_cache()})

        def waiting(ahead: int) -> None:
            progress(None, desc=f"waiting for the GPU ({ahead} job(s) ahead)")

        result = run_job(
            folder / chars.CHARACTER_IMAGE, landmarks, Path(driving),
            self.workspace.new_run_folder(request.session_hash), settings=cfg, options=options,
            gpu=self.gpu, progress=progress_sink(progress), waiting=waiting, name=state.name,
        )  # fmt: skip
        files = [str(result.output), str(result.landmarks_file), str(landmarks)]
        summary = (
            f"{result.frames} frames at {result.fps:g} fps by **{result.backend}** on "
            f"{result.device} in {result.timings.get('total', 0.0):.1f} s"
        )
        figures = ""
        if measure_result:
            progress(None, desc="measuring the result")
            figures = measure(result, folder / chars.CHARACTER_IMAGE, result.output.parent)
        return str(result.output), str(result.compare), files, summary, figures


def build_app(
    workspace: Workspace,
    limits: UploadLimits | None = None,
    gpu: GpuQueue | None = None,
    *,
    run_slots: int = 4,
) -> gr.Blocks:
    """The page; :func:`~faceshot.ui.serve.launch` serves it (tests serve it themselves).

    ``run_slots`` runs may go at once (the CPU ones side by side; GPU ones wait in ``gpu``).
    """
    limits = limits or UploadLimits()
    h = Handlers(workspace, limits, gpu or GpuQueue())
    with gr.Blocks(title="faceshot", delete_cache=(3600, 3600), analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        history = gr.State(EditHistory())
        driving_path = gr.State(None)
        options_state = gr.State({})
        taken_image, taken_video = gr.State(None), gr.State(None)  # what a drop zone handed on
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, elem_id="character-panel"):
                gr.Markdown("## 1. Character")
                with gr.Row():
                    character_file = gr.File(
                        label="Character image", file_types=list(IMAGE_SUFFIXES),
                        elem_id="character-upload", height=120,
                    )  # fmt: skip
                    demo_cat = gr.Button("Use the demo cat", elem_id="demo-cat", scale=0)
                editor = landmark_editor(elem_id="editor")
                with gr.Row():
                    detect_btn = gr.Button("Detect (human-like faces)", elem_id="detect")
                    match_btn = gr.Button("Match (needs weights and a gallery)", elem_id="match")
                    template_btn = gr.Button("Place template: 3 clicks", elem_id="template")
                    undo_btn = gr.Button("Undo", elem_id="undo")
                with gr.Row():
                    mirror_left = gr.Button("Mirror: keep image-left side", elem_id="mirror-left")
                    mirror_right = gr.Button(
                        "Mirror: keep image-right side", elem_id="mirror-right"
                    )
                    import_btn = gr.UploadButton(
                        "Import landmarks", file_types=list(LANDMARK_SUFFIXES),
                        elem_id="import-landmarks",
                    )  # fmt: skip
                with gr.Row():
                    export_format = gr.Dropdown(
                        choices=list(chars.EXPORT_FORMATS), value=next(iter(chars.EXPORT_FORMATS)),
                        label="Export format", elem_id="export-format",
                    )  # fmt: skip
                    export_btn = gr.Button("Export landmarks", elem_id="export")
                    export_file = gr.File(
                        label="Exported landmarks", elem_id="export-file", height=80
                    )
            with gr.Column(scale=2):
                gr.Markdown("## 2. Driving video")
                with gr.Row():
                    driving_file = gr.File(
                        label="Driving video", file_types=list(VIDEO_SUFFIXES),
                        elem_id="driving-upload", height=120,
                    )  # fmt: skip
                    demo_clip_btn = gr.Button("Use the demo clip", elem_id="demo-clip", scale=0)
                driving_preview = gr.Video(
                    label="Detected driving landmarks", interactive=False,
                    elem_id="driving-preview",
                )  # fmt: skip
                driving_summary = gr.Markdown(elem_id="driving-summary")
        gr.Markdown("## 3. Motion, backend and run")
        with gr.Accordion("Motion", open=False):
            motion = motion_controls()
        with gr.Row():
            backend = gr.Dropdown(
                choices=backend_names(), value="warp", label="Backend", elem_id="backend",
            )  # fmt: skip
            backend_info = gr.Markdown(backend_description("warp"))
        with gr.Accordion("Backend options", open=False):

            @gr.render(inputs=backend)
            def _options(name: str) -> None:
                render_options(name, options_state)

        with gr.Row():
            run_btn = gr.Button("Run", variant="primary", elem_id="run", scale=4)
            measure_box = gr.Checkbox(
                label="Measure the result (faceshot eval)", value=False, elem_id="measure",
                scale=1, info="point tracking, anatomy, motion, stability, identity",
            )  # fmt: skip
        with gr.Row():
            result_video = gr.Video(label="Result", interactive=False, elem_id="result-video")
            compare_video = gr.Video(
                label="Driving | character | result", interactive=False, elem_id="compare-video"
            )
        downloads = gr.File(
            label="Downloads", file_count="multiple", elem_id="downloads", height=160
        )
        run_summary = gr.Markdown(elem_id="run-summary")
        run_figures = gr.Markdown(elem_id="run-figures")

        edit_out = [editor, history]
        # a drop zone hands its file over and empties (the editor or the preview shows it),
        # so the next file can be dropped whether this one was accepted or not
        character_file.upload(take_file, character_file, [character_file, taken_image]).then(
            page_errors(h.upload_character), taken_image, edit_out
        )
        demo_cat.click(page_errors(h.demo_character), None, edit_out)
        detect_btn.click(page_errors(h.detect), [editor, history], edit_out)
        match_btn.click(page_errors(h.match), [editor, history], edit_out)
        template_btn.click(page_errors(h.start_template), editor, editor)
        editor.input(page_errors(h.edited), [editor, history], edit_out)
        undo_btn.click(page_errors(h.undo), [editor, history], edit_out)
        mirror_left.click(page_errors(h.mirror("image_left")), [editor, history], edit_out)
        mirror_right.click(page_errors(h.mirror("image_right")), [editor, history], edit_out)
        import_btn.upload(page_errors(h.import_landmarks), [import_btn, editor, history], edit_out)
        export_btn.click(page_errors(h.export), [editor, export_format], export_file)
        preview_out = [driving_path, driving_preview, driving_summary]
        driving_file.upload(take_file, driving_file, [driving_file, taken_video]).then(
            page_errors(h.driving), taken_video, preview_out
        )
        demo_clip_btn.click(page_errors(h.demo_driving), None, preview_out)
        backend.change(lambda name: ({}, backend_description(name)), backend,
                       [options_state, backend_info])  # fmt: skip

        @page_errors
        def run(
            data: dict[Any, Any], request: gr.Request, progress: gr.Progress = gr.Progress()
        ) -> Any:
            settings = motion.settings(data[backend], [data[c] for c in motion.inputs])
            return h.run(data[editor], data[driving_path], settings, data[options_state],
                         request, progress, data[measure_box])  # fmt: skip

        run_inputs = {editor, driving_path, backend, options_state, measure_box, *motion.inputs}
        run_btn.click(
            run, run_inputs, [result_video, compare_video, downloads, run_summary, run_figures],
            concurrency_limit=run_slots, concurrency_id="run",
        )  # fmt: skip

        def end_session(request: gr.Request) -> None:
            workspace.end_session(request.session_hash)

        app.unload(end_session)
    return app
