"""Status output of the CLI: progress bars (events from the core) and one-line messages."""

from __future__ import annotations

import sys

from faceshot_core.progress import ProgressEvent, ProgressSink, progress_display

__all__ = ["ProgressEvent", "ProgressSink", "progress_display", "say"]


def say(message: str, *, quiet: bool = False) -> None:
    """One line of status on stderr (stdout stays clean for piping)."""
    if not quiet:
        print(message, file=sys.stderr)
