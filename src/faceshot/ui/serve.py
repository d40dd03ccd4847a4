"""Serving the app: a temporary workspace, Gradio's queue and limits, and a clean stop.

Local by default (127.0.0.1): the app runs models and writes files on the machine it runs on, so
exposing it is the user's explicit choice (``--host 0.0.0.0``).  Nothing phones home: Gradio's
analytics are off and no share link is made.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from faceshot.ui.workspace import UploadLimits, Workspace
from faceshot_core.errors import FaceshotUserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    limits: UploadLimits | None = None,
    cpu_jobs: int = 4,
    quiet: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the app until Ctrl-C or SIGTERM; every session's files are removed on the way out.

    The stop arrives as an exception in this thread (``KeyboardInterrupt``, or the CLI's
    ``Terminated``), which closes the server and removes the workspace before it propagates.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    limits = limits or UploadLimits()
    workspace = Workspace()
    # uploads land in the workspace too, so stopping the app removes them with the rest
    os.environ.setdefault("GRADIO_TEMP_DIR", str(workspace.root / "uploads"))
    app = None
    try:
        from faceshot.ui.app import build_app

        app = build_app(workspace, limits, run_slots=cpu_jobs)
        app.queue(default_concurrency_limit=cpu_jobs)
        try:
            _, url, _ = app.launch(
                server_name=host, server_port=port, share=False, inbrowser=False,
                show_error=False, max_file_size=f"{limits.largest_mb:g}mb",
                allowed_paths=[str(workspace.root)], quiet=True, ssr_mode=False,
                prevent_thread_lock=True,
            )  # fmt: skip
        except OSError as exc:
            raise FaceshotUserError(f"cannot serve on {host}:{port}: {exc}") from None
        if on_ready is not None:
            on_ready(url)
        while True:
            time.sleep(0.5)
    finally:
        if app is not None:
            app.close()
        workspace.remove()
