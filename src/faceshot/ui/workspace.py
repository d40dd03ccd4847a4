"""Where the web app keeps files, what it accepts as uploads, and who may use the GPU.

* Every browser session works in its own folder under the app's temporary root; the folder is
  removed when the page is closed (Gradio's ``unload``) and the root when the app stops, so a
  long-running app does not fill the disk with other people's characters.
* Uploads are checked by suffix and size before anything reads them: Gradio's own limit is a
  ceiling for every request, the limits here are per kind of file.
* One GPU job at a time, first come first served (:class:`GpuQueue`); CPU jobs run side by side
  up to the app's job limit.  Two diffusion pipelines on one GPU would only run out of memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from faceshot_core.errors import FaceshotUserError, MediaError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
LANDMARK_SUFFIXES = (".json", ".npy", ".npz", ".pts", ".txt")
MEGABYTE = 1024 * 1024


class UploadError(FaceshotUserError):
    """An upload of the wrong kind or size."""


@dataclass(frozen=True)
class UploadLimits:
    """Largest accepted file of each kind, in megabytes."""

    image_mb: float = 40.0
    video_mb: float = 500.0
    landmarks_mb: float = 5.0

    @property
    def largest_mb(self) -> float:
        return max(self.image_mb, self.video_mb, self.landmarks_mb)


def check_upload(path: str | os.PathLike[str] | None, kind: str, limits: UploadLimits) -> Path:
    """``path`` when it is an accepted ``kind`` ("image", "video", "landmarks") of upload."""
    if not path:
        raise UploadError(f"no {kind} file was uploaded")
    p = Path(path)
    suffixes = {"image": IMAGE_SUFFIXES, "video": VIDEO_SUFFIXES, "landmarks": LANDMARK_SUFFIXES}
    allowed = suffixes[kind]
    limit_mb = {"image": limits.image_mb, "video": limits.video_mb}.get(kind, limits.landmarks_mb)
    if p.suffix.lower() not in allowed:
        article = "an" if kind[0] in "aeiou" else "a"
        raise UploadError(
            f"{p.name} is not {article} {kind} file this app accepts ({', '.join(allowed)})"
        )
    if not p.is_file():
        raise MediaError(f"the upload {p.name} is gone; upload it again")
    size_mb = p.stat().st_size / MEGABYTE
    if size_mb > limit_mb:
        raise UploadError(f"{p.name} is {size_mb:.1f} MB; {kind} uploads are limited to "
                          f"{limit_mb:g} MB")  # fmt: skip
    return p


@contextmanager
def named_as_uploaded(path: Path) -> Iterator[None]:
    """Errors about an upload name the file the user chose, not the server's copy of it."""
    try:
        yield
    except FaceshotUserError as exc:
        exc.args = tuple(
            a.replace(str(path), path.name) if isinstance(a, str) else a for a in exc.args
        )
        raise


class Workspace:
    """The app's temporary root and one folder per browser session inside it."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="faceshot-ui-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._runs = 0

    @staticmethod
    def _session_name(session_id: str | None) -> str:
        """A session's id with only letters, digits, ``-`` and ``_``: nothing in it can climb
        out of the sessions folder (empty when nothing is left)."""
        return "".join(ch for ch in (session_id or "") if ch.isalnum() or ch in "-_")

    def session(self, session_id: str | None) -> Path:
        """The folder of one browser session (created on first use)."""
        folder = self.root / "sessions" / (self._session_name(session_id) or "anonymous")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def new_run_folder(self, session_id: str | None) -> Path:
        """A fresh folder for one run's outputs (earlier results stay playable)."""
        with self._lock:
            self._runs += 1
            number = self._runs
        folder = self.session(session_id) / f"run-{number:04d}"
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    def shared(self) -> Path:
        """Files every session may read (the bundled demo clip)."""
        folder = self.root / "shared"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def driving_cache(self) -> Path:
        """The driving-landmark cache the previews fill and the runs read."""
        return self.shared() / "driving-cache"

    def end_session(self, session_id: str | None) -> None:
        """Remove a session's folder (the page was closed)."""
        name = self._session_name(session_id)
        if name:
            shutil.rmtree(self.root / "sessions" / name, ignore_errors=True)

    def remove(self) -> None:
        """Remove everything (the app stopped)."""
        shutil.rmtree(self.root, ignore_errors=True)


class GpuQueue:
    """A first-come-first-served lock: one job on the GPU, the others wait in arrival order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._given_back: set[int] = set()

    @property
    def waiting(self) -> int:
        """Jobs holding a ticket that are not yet done (the running one included)."""
        with self._cond:
            return self._next_ticket - self._serving

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """Wait for this job's turn; ``on_wait(jobs_ahead)`` is called first when it must wait.

        A ticket is given back however its holder leaves (done, failed, or failed while
        waiting, as when ``on_wait`` reports to a page that was closed), so no job behind it
        waits for ever.
        """
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            ahead = ticket - self._serving
        try:
            if ahead and on_wait is not None:
                on_wait(ahead)
            with self._cond:
                while ticket != self._serving:
                    self._cond.wait()
            yield
        finally:
            with self._cond:
                self._given_back.add(ticket)
                while self._serving in self._given_back:
                    self._given_back.discard(self._serving)
                    self._serving += 1
                self._cond.notify_all()
