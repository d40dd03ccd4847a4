"""Status output of the CLI: progress bars (from the core) and one-line messages on stderr."""

from __future__ import annotations

import sys

from faceshot_core.progress import ProgressCallback, progress_bar

__all__ = ["ProgressCallback", "progress_bar", "say"]


def say(message: str, *, quiet: bool = False) -> None:
    """One line of status on stderr (stdout stays clean for piping)."""
    if not quiet:
        print(message, file=sys.stderr)
