"""Write-then-rename, so that a failure never leaves a partial output file behind.

Every file faceshot produces goes through :func:`atomic_output`: the writer gets a temporary
path in the destination folder (same filesystem, so the final ``os.replace`` is atomic), and
only a writer that finishes without an exception gets its file moved into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faceshot_core.errors import MediaError


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written.

    Checks that the folder exists and is writable, that ``path`` is not a folder, and (unless
    ``overwrite``) that nothing is there yet.  Doing this before any long work means a typo in
    ``-o`` costs nothing.
    """
    out = Path(path)
    if out.is_dir():
        raise MediaError(f"output {out} is a folder, expected a file path")
    check_output_folder(out)
    if out.exists() and not overwrite:
        raise MediaError(f"output {out} already exists (use --overwrite to replace it)")
    return out


def check_output_folder(out: Path) -> None:
    """The folder that will hold ``out`` must exist and be writable."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise MediaError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MediaError(f"output folder {parent} is not writable")


def current_umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary name keeps the final suffix, because tools such as ffmpeg choose the container
    from it.  On any exception the temporary file is removed and the exception propagates.
    """
    out = check_output_path(path, overwrite=overwrite)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{out.stem}.", suffix=f".partial{out.suffix}", dir=out.parent or "."
        )
    except OSError as exc:
        raise MediaError(f"cannot write in {out.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"writing {out} produced no data")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
