"""Built-in sample data: registry-shipped images and the landmarks faceshot ships for them.

scikit-image (a dependency) ships ``astronaut.png`` (a person) and ``chelsea.png`` (a cat);
faceshot ships 68 landmarks for the cat, placed by hand by its developers, so the demo, the
conformance kit and the tests can animate a non-human face with nothing downloaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from faceshot_core.landmark_files import load_face
from faceshot_core.landmarks import FaceLandmarks


def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait, RGB uint8 512x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def chelsea() -> np.ndarray:
    """scikit-image's cat, RGB uint8 451x300."""
    from skimage import data

    return np.ascontiguousarray(data.chelsea())


def chelsea_landmarks_path() -> Path:
    """The hand-placed 68 landmarks of :func:`chelsea` (faceshot JSON)."""
    return Path(str(resources.files("faceshot_core") / "assets" / "chelsea.json"))


def chelsea_landmarks() -> FaceLandmarks:
    return load_face(chelsea_landmarks_path())
