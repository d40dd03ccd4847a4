"""The bundled driving clip of ``faceshot demo`` and ``faceshot ui``: made, not downloaded.

The actor is scikit-image's astronaut portrait; faceshot's own warp animator gives her a head
motion, a blink and an opening mouth with known poses, so the clip needs no network and the
detector's error on it can be stated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceshot.pipeline import detect_reference
from faceshot_backends.warp_engine import LandmarkWarper
from faceshot_core.sample_data import astronaut
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
