"""``faceshot demo``: animate a cat with a person's expressions, offline, on any CPU.

The actor is scikit-image's astronaut portrait: faceshot's own warp animator gives her a head
motion, a blink and an opening mouth (known poses), and that clip is the driving video.  The
character is scikit-image's cat (chelsea) with 68 landmarks the faceshot developers placed by
hand.  Then the real pipeline runs: landmarks are detected in the driving clip, retargeted to
the cat, and the cat is animated by the ``warp`` backend.  Nothing is downloaded.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
import numpy as np

from faceshot.cli.options import overwrite_option, quiet_option
from faceshot.cli.progress import ProgressEvent, progress_display, say
from faceshot.pipeline import detect_reference
from faceshot.runner import run
from faceshot_backends.warp_engine import LandmarkWarper
from faceshot_core.atomic import check_output_path
from faceshot_core.images import save_image
from faceshot_core.sample_data import astronaut, chelsea, chelsea_landmarks_path
from faceshot_core.synthetic import HeadMotion, expression_sequence
from faceshot_core.video import write_video

DRIVING_FPS = 24.0


def write_driving_clip(path: Path, frames: int) -> np.ndarray:
    """The astronaut with known head motion and expressions; returns the poses [M, 68, 2]."""
    actor = astronaut()
    face = detect_reference(actor, source="astronaut.png")
    poses = expression_sequence(face.points, frames, motion=HeadMotion(period=frames))
    warper = LandmarkWarper(actor, face.points)
    write_video(path, (warper.render(p) for p in poses), DRIVING_FPS)
    return poses


@click.command()
@click.option(
    "-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path("faceshot-demo"), show_default=True, help="Folder for the demo's outputs.",
)  # fmt: skip
@click.option("--frames", type=click.IntRange(2, 2000), default=72, show_default=True,
              help="Length of the synthetic driving clip.")  # fmt: skip
@overwrite_option
@quiet_option
def demo(output_dir: Path, frames: int, overwrite: bool, quiet: bool) -> None:
    """Animate a built-in cat image with a built-in person's expressions (CPU, offline).

    Writes into the output folder: driving.mp4 (the driving clip), reference.png and
    reference.json (the cat and its landmarks), cat.mp4 (the animation), cat_compare.mp4
    (driving | cat | animation) and cat_landmarks.npz (the cat's reposed landmarks).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    driving, image, landmarks = (output_dir / n for n in
                                 ("driving.mp4", "reference.png", "reference.json"))  # fmt: skip
    for path in (driving, image, landmarks):
        check_output_path(path, overwrite=overwrite)
    started = time.perf_counter()
    with progress_display(quiet=quiet):
        poses = write_driving_clip(driving, frames)
    save_image(image, chelsea())
    shutil.copyfile(chelsea_landmarks_path(), landmarks)

    with progress_display(quiet=quiet) as display:
        result = run(
            image, driving, output=output_dir / "cat.mp4", backend="warp",
            reference_landmarks=landmarks, compare=True, overwrite=overwrite,
            progress=lambda stage, done, total: display(ProgressEvent(stage, done, total)),
        )  # fmt: skip
    error = np.linalg.norm(result.driving.points - poses, axis=-1)
    say(f"driving landmarks: {len(poses)} frames, error vs the known poses "
        f"{error.mean():.2f} px mean, {error.max():.2f} px max", quiet=quiet)  # fmt: skip
    say(f"done in {time.perf_counter() - started:.1f} s; outputs in {output_dir}/: driving.mp4, "
        "reference.png, reference.json, cat.mp4, cat_compare.mp4, cat_landmarks.npz",
        quiet=quiet)  # fmt: skip
