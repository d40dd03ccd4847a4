"""The ``faceshot`` command line.

User mistakes (a missing file, a bad landmark file, an output that exists) end with one line on
stderr and exit code 2, never a traceback.  A plugin that fails to load or crashes while
animating ends with one line naming the backend and exit code 1 (``FACESHOT_DEBUG=1`` shows the
traceback); anything else is a bug of faceshot and keeps its traceback.
Every output is checked for writability before the long work starts, and written atomically.

Stopping the program is not a bug either: Ctrl-C ends with "faceshot: interrupted" (exit 130)
and SIGTERM, which containers, schedulers and ``timeout`` send, with "faceshot: terminated"
(exit 143).  SIGTERM's default action would kill Python on the spot, leaving the hidden temporary
outputs beside the real ones and ffmpeg running; so for the duration of a command it raises
:class:`Terminated` instead, which unwinds through the same ``finally`` and ``__exit__`` code as
``KeyboardInterrupt`` (temporary files removed, ffmpeg killed).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from faceshot.cli.backends_cmd import backends
from faceshot.cli.batch_cmd import batch
from faceshot.cli.demo_cmd import demo
from faceshot.cli.detect_cmd import detect
from faceshot.cli.eval_cmd import eval_
from faceshot.cli.gallery_cmd import gallery
from faceshot.cli.landmarks_cmd import landmarks
from faceshot.cli.plugin_commands import add_plugin_commands
from faceshot.cli.retarget_cmd import retarget
from faceshot.cli.run_cmd import run
from faceshot.cli.ui_cmd import ui
from faceshot.cli.weights_cmd import weights
from faceshot_core.errors import FaceshotError, FaceshotUserError

USER_ERROR_EXIT = 2
FAILURE_EXIT = 1
DEBUG_ENV = "FACESHOT_DEBUG"
INTERRUPTED_EXIT = 128 + signal.SIGINT
TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives during a command.

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` clauses (in
    faceshot or in a plugin) do not swallow it while every ``finally`` still runs.
    """


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="faceshot")
def cli() -> None:
    """faceshot: bring any character to life from a driving video.

    \b
    Animate a character in one command:
      faceshot run -r character.png -d driving.mp4 -o out.mp4 [--backend NAME]
    or step by step:
      faceshot detect VIDEO -o driving.npz            driving-video landmarks
      faceshot landmarks detect IMAGE -o ref.json     a human-like face's landmarks
      faceshot landmarks match IMAGE -o ref.json --gallery G   any character's landmarks
      faceshot retarget --reference-landmarks ref.json --driving driving.npz -o seq.npz
    and `faceshot demo` runs it all on a built-in example, offline, on any CPU;
    `faceshot ui` serves the web app with a landmark editor (faceshot[ui]).
    """


cli.add_command(run)
cli.add_command(backends)
cli.add_command(detect)
cli.add_command(retarget)
cli.add_command(landmarks)
cli.add_command(gallery)
cli.add_command(demo)
cli.add_command(weights)
cli.add_command(ui)
cli.add_command(eval_)
cli.add_command(batch)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs; restore the old handler.

    Only the first SIGTERM raises: more of them (a scheduler repeating itself) must not
    interrupt the clean-up that the first one started.  A SIGTERM that the parent process set
    to be ignored stays ignored (as Python does for SIGINT), and outside the main thread signals
    cannot be handled, so in both cases this does nothing.
    """
    raised = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated

    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:  # None: a handler installed outside Python, which cannot be put back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        with sigterm_raises():
            add_plugin_commands(cli)
            # without standalone mode click returns a command's exit code instead of exiting
            code = cli.main(args=argv, prog_name="faceshot", standalone_mode=False)
    except FaceshotUserError as exc:
        click.echo(f"faceshot: error: {exc}", err=True)
        return USER_ERROR_EXIT
    except FaceshotError as exc:  # a plugin broke (failed to load, crashed while animating)
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(f"faceshot: error: {exc} (set {DEBUG_ENV}=1 for the traceback)", err=True)
        return FAILURE_EXIT
    except Terminated:
        click.echo("faceshot: terminated", err=True)
        return TERMINATED_EXIT
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("faceshot: interrupted", err=True)
        return INTERRUPTED_EXIT
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise  # anything else is a bug: keep the traceback
        # a writer outside faceshot_core.atomic (a plugin's, say) hit a full disk
        where = f" while writing {exc.filename}" if exc.filename else ""
        click.echo(f"faceshot: error: no space left on device{where}", err=True)
        return USER_ERROR_EXIT
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
