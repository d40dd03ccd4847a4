"""``faceshot demo``: the whole pipeline on built-in data, offline, on any CPU.

The actor is scikit-image's astronaut portrait, moved by a known synthetic head motion; the
character is scikit-image's cat (chelsea) with 68 landmarks the faceshot developers placed by
hand (shipped in ``faceshot_core/assets``).  Nothing is downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import cv2
import numpy as np

from faceshot.cli.options import overwrite_option, quiet_option
from faceshot.cli.progress import progress_bar, say
from faceshot.pipeline import detect_reference, load_driving, reposed_sequence
from faceshot_core.atomic import check_output_path
from faceshot_core.landmark_files import save_landmarks
from faceshot_core.render import draw_landmarks, overlay_on_still
from faceshot_core.sample_data import astronaut, chelsea, chelsea_landmarks
from faceshot_core.synthetic import write_motion_clip
from faceshot_core.video import iter_frames, write_video

OUTPUTS = ("driving.mp4", "driving.npz", "reposed.npz", "reposed.mp4", "compare.mp4")
PANEL_HEIGHT = 384


def _panel(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    width = round(w * PANEL_HEIGHT / h / 2) * 2
    return cv2.resize(image, (width, PANEL_HEIGHT), interpolation=cv2.INTER_AREA)


@click.command()
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("faceshot-demo"),
    show_default=True,
    help="Folder for the demo's outputs.",
)
@click.option(
    "--frames",
    type=click.IntRange(2, 2000),
    default=72,
    show_default=True,
    help="Length of the synthetic driving clip.",
)
@overwrite_option
@quiet_option
def demo(output_dir: Path, frames: int, overwrite: bool, quiet: bool) -> None:
    """Run the pipeline on built-in images: a person's head motion drives a cat's landmarks.

    Writes into the output folder: driving.mp4 (the synthetic driving clip), driving.npz (its
    detected landmarks), reposed.npz (the cat's landmark sequence), reposed.mp4 (that sequence
    drawn on the cat) and compare.mp4 (driving | cat, side by side).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in OUTPUTS}
    for path in paths.values():
        check_output_path(path, overwrite=overwrite)
    actor, cat = astronaut(), chelsea()
    started = time.perf_counter()

    actor_face = detect_reference(actor, source="astronaut.png")
    truth = write_motion_clip(paths["driving.mp4"], actor, actor_face.points, num_frames=frames)
    with progress_bar("detecting", quiet=quiet) as progress:
        driving = load_driving(paths["driving.mp4"], progress=progress)
    save_landmarks(paths["driving.npz"], driving, overwrite=True)
    error = np.linalg.norm(driving.points - truth, axis=-1)
    say(
        f"driving landmarks: {len(driving)} frames, error vs the known motion "
        f"{error.mean():.2f} px mean, {error.max():.2f} px max",
        quiet=quiet,
    )

    reference = chelsea_landmarks()
    sequence = reposed_sequence(reference, driving)
    save_landmarks(paths["reposed.npz"], sequence, overwrite=True)

    fps = driving.fps or 24.0
    # Streamed (drawn twice rather than held), so memory does not grow with --frames.
    write_video(paths["reposed.mp4"], overlay_on_still(cat, sequence.points), fps, overwrite=True)
    compare = (
        np.concatenate([_panel(draw_landmarks(frame, pts)), _panel(cat_frame)], axis=1)
        for frame, pts, cat_frame in zip(
            iter_frames(paths["driving.mp4"]),
            driving.points,
            overlay_on_still(cat, sequence.points),
            strict=False,
        )
    )
    write_video(paths["compare.mp4"], compare, fps, overwrite=True)
    say(
        f"done in {time.perf_counter() - started:.1f} s; outputs in {output_dir}/: "
        + ", ".join(OUTPUTS),
        quiet=quiet,
    )
