"""``faceshot demo``: animate a cat with a person's expressions, offline, on any CPU.

The actor is scikit-image's astronaut portrait: faceshot's own warp animator gives her a head
motion, a blink and an opening mouth (known poses), and that clip is the driving video.  The
character is scikit-image's cat (chelsea) with 68 landmarks the faceshot developers placed by
hand.  Then the real pipeline runs: landmarks are detected in the driving clip, retargeted to
the cat, and the cat is animated by the ``warp`` backend.  Nothing is downloaded.

The demo owns its output folder: the README tells new users to run it, and running it twice
must work.  A hidden ``.faceshot-demo`` file marks a folder the demo wrote; there it replaces its
own six files (and nothing else).  Files of those names that the demo did not make (``cat.mp4``
in a folder of your own) are refused unless ``--overwrite``, like every faceshot output.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
import numpy as np

from faceshot.cli.options import quiet_option
from faceshot.cli.progress import progress_display, say
from faceshot.demo_clip import write_driving_clip
from faceshot.runner import run
from faceshot_core.atomic import atomic_output, check_output_path
from faceshot_core.errors import MediaError
from faceshot_core.images import save_image
from faceshot_core.sample_data import chelsea, chelsea_landmarks_path

#: Everything the demo writes; only these names are ever replaced in its folder.
DEMO_FILES = (
    "driving.mp4", "reference.png", "reference.json",
    "cat.mp4", "cat_compare.mp4", "cat_landmarks.npz",
)  # fmt: skip
MARKER = ".faceshot-demo"


def prepare_folder(folder: Path, overwrite: bool) -> None:
    """Create or claim the demo's folder, after which the demo replaces its files there.

    The demo's own earlier outputs (the folder carries :data:`MARKER`) may be replaced; files of
    the same names that something else made are refused unless ``overwrite``.
    """
    try:  # (a file at ``folder`` is refused by the option's type)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"cannot create the demo folder {folder}: {exc.strerror or exc}") from None
    foreign = [n for n in DEMO_FILES if (folder / n).exists()]
    if foreign and not overwrite and not (folder / MARKER).is_file():
        raise MediaError(
            f"{folder} already holds {', '.join(foreign)}, not made by faceshot demo; choose "
            "another --output-dir, or add --overwrite to replace them"
        )
    for name in DEMO_FILES:
        check_output_path(folder / name, overwrite=True)
    with atomic_output(folder / MARKER) as tmp:
        tmp.write_text(
            "Made by `faceshot demo`, which replaces its files here when run again: "
            + ", ".join(DEMO_FILES) + ".\n"
        )  # fmt: skip


@click.command()
@click.option(
    "-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path("faceshot-demo"), show_default=True, help="Folder for the demo's outputs.",
)  # fmt: skip
@click.option("--frames", type=click.IntRange(2, 2000), default=72, show_default=True,
              help="Length of the synthetic driving clip.")  # fmt: skip
@click.option(
    "--overwrite", is_flag=True,
    help="Also replace files of the demo's names in a folder the demo did not write.",
)  # fmt: skip
@quiet_option
def demo(output_dir: Path, frames: int, overwrite: bool, quiet: bool) -> None:
    """Animate a built-in cat image with a built-in person's expressions (CPU, offline).

    Writes into the output folder: driving.mp4 (the driving clip), reference.png and
    reference.json (the cat and its landmarks), cat.mp4 (the animation), cat_compare.mp4
    (driving | cat | animation) and cat_landmarks.npz (the cat's reposed landmarks).

    Running it again replaces these files and nothing else in the folder, which a hidden
    .faceshot-demo file marks as the demo's.  In a folder the demo did not write, files of those
    names are left alone and the demo stops, unless --overwrite.
    """
    prepare_folder(output_dir, overwrite)
    overwrite = True  # the folder is the demo's now: its own files are replaced
    driving, image, landmarks = (output_dir / n for n in DEMO_FILES[:3])
    started = time.perf_counter()
    with progress_display(quiet=quiet):
        poses = write_driving_clip(driving, frames)
    save_image(image, chelsea())
    with atomic_output(landmarks) as tmp:
        shutil.copyfile(chelsea_landmarks_path(), tmp)

    with progress_display(quiet=quiet) as display:
        result = run(
            image, driving, output=output_dir / "cat.mp4", backend="warp",
            reference_landmarks=landmarks, compare=True, overwrite=overwrite,
            progress=display,
        )  # fmt: skip
    error = np.linalg.norm(result.driving.points - poses, axis=-1)
    say(f"driving landmarks: {len(poses)} frames, error vs the known poses "
        f"{error.mean():.2f} px mean, {error.max():.2f} px max", quiet=quiet)  # fmt: skip
    say(f"done in {time.perf_counter() - started:.1f} s; outputs in {output_dir}/: driving.mp4, "
        "reference.png, reference.json, cat.mp4, cat_compare.mp4, cat_landmarks.npz",
        quiet=quiet)  # fmt: skip
