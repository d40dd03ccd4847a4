"""The ``faceshot`` command line.

User mistakes (a missing file, a bad landmark file, an output that exists) end with one line on
stderr and exit code 2, never a traceback; anything else is a bug and keeps its traceback.
Every output is checked for writability before the long work starts, and written atomically.
"""

from __future__ import annotations

import sys

import click

from faceshot.cli.demo_cmd import demo
from faceshot.cli.detect_cmd import detect
from faceshot.cli.gallery_cmd import gallery
from faceshot.cli.landmarks_cmd import landmarks
from faceshot.cli.retarget_cmd import retarget
from faceshot.cli.run_cmd import backends, run
from faceshot.cli.weights_cmd import weights
from faceshot_core.errors import FaceshotUserError

USER_ERROR_EXIT = 2


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
    and `faceshot demo` runs it all on a built-in example, offline, on any CPU.
    """


cli.add_command(run)
cli.add_command(backends)
cli.add_command(detect)
cli.add_command(retarget)
cli.add_command(landmarks)
cli.add_command(gallery)
cli.add_command(demo)
cli.add_command(weights)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="faceshot", standalone_mode=False)
    except FaceshotUserError as exc:
        click.echo(f"faceshot: error: {exc}", err=True)
        return USER_ERROR_EXIT
    except click.exceptions.Abort:
        click.echo("faceshot: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
