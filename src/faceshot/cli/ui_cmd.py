"""``faceshot ui``: the web app (needs ``pip install 'faceshot[ui]'``)."""

from __future__ import annotations

import click

from faceshot.cli.options import quiet_option
from faceshot.cli.progress import say
from faceshot_core.errors import MissingDependencyError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves other machines too.")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True,
              help="Port to listen on.")  # fmt: skip
@click.option("--max-upload-mb", type=click.FloatRange(1, 10_000), default=500.0,
              show_default=True,
              help="Largest driving video accepted (images: 40 MB at most).")  # fmt: skip
@click.option("--cpu-jobs", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Runs on the CPU at the same time (GPU runs take turns, one at a "
              "time).")  # fmt: skip
@quiet_option
def ui(host: str, port: int, max_upload_mb: float, cpu_jobs: int, quiet: bool) -> None:
    """Serve the web app: landmark editor, driving preview, any backend, results to download.

    Each browser session works in its own temporary folder, removed when its page is closed and
    when the app stops (Ctrl-C).
    """
    try:
        import gradio  # noqa: F401  (the app's one dependency beyond faceshot's own)

        from faceshot.ui.serve import launch
        from faceshot.ui.workspace import UploadLimits
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("gradio"):
            raise
        raise MissingDependencyError(
            "faceshot ui needs the web app's extra: pip install 'faceshot[ui]'"
        ) from None
    limits = UploadLimits(image_mb=min(40.0, max_upload_mb), video_mb=max_upload_mb)
    launch(
        host, port, limits=limits, cpu_jobs=cpu_jobs, quiet=quiet,
        on_ready=lambda url: say(f"faceshot ui: serving on {url} (Ctrl-C stops it)", quiet=quiet),
    )  # fmt: skip
