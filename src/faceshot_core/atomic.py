"""Write-then-rename, so that a failure never leaves a partial output file behind.

Every file faceshot produces goes through :func:`atomic_output`: the writer gets a temporary
path in the destination folder (same filesystem, so the final ``os.replace`` is atomic), and
only a writer that finishes without an exception gets its file moved into place.  Any
exception counts, including ``KeyboardInterrupt`` and the CLI's SIGTERM exception, so the
temporary file goes whatever stops the program (short of SIGKILL).  A full disk surfaces from
the writer as ``OSError(ENOSPC)``; it is turned into one :class:`OutOfSpaceError` line naming
the output, since a traceback would only hide that fact.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faceshot_core.errors import MediaError, OutOfSpaceError

#: ``errno`` values that mean the disk or the user's quota is full.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


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
        if exc.errno in NO_SPACE_ERRNOS:
            raise no_space_error(out) from None
        raise MediaError(f"cannot write in {out.parent}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in NO_SPACE_ERRNOS:
                raise no_space_error(out) from None
            if exc.errno == errno.EFBIG:
                raise MediaError(
                    f"{out}: the file is larger than the file system or the process's file "
                    "size limit allows"
                ) from None
            raise
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"writing {out} produced no data")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def no_space_error(out: Path) -> OutOfSpaceError:
    """The one-line error for a disk (or quota) that filled up while ``out`` was written."""
    return OutOfSpaceError(f"no space left on device while writing {out}")
