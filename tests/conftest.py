"""Shared fixtures (real images from scikit-image, the optional ../shared/data folder) and the
marker rules: a test using the ``shared_data`` fixture is marked ``shared_data``, and a test
marked ``gpu`` skips when no CUDA device is present.

Helpers that benchmarks use too live in the installed package (:mod:`faceshot_core.synthetic_faces`,
:mod:`faceshot_core.synthetic_tracking`, :mod:`faceshot_core.retarget_loop`), not here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from faceshot_core.torch_support import cuda_available

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None and not cuda_available():
        pytest.skip("needs a CUDA device")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut.png (a person, 512x512 RGB)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """scikit-image's chelsea.png (a cat, 451x300 RGB): a face no human detector finds."""
    from skimage import data

    return np.ascontiguousarray(data.chelsea())


@pytest.fixture(scope="session")
def astronaut_points(astronaut: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks on the astronaut (float64)."""
    from faceshot.pipeline import detect_reference

    return detect_reference(astronaut).points.astype(np.float64)


@pytest.fixture(scope="session")
def chelsea_points() -> np.ndarray:
    """The cat's hand-placed 68 landmarks shipped with faceshot (float64)."""
    from faceshot_core.sample_data import chelsea_landmarks

    return chelsea_landmarks().points.astype(np.float64)


@pytest.fixture(params=["astronaut", "chelsea"])
def face(
    request: pytest.FixtureRequest,
    astronaut: np.ndarray,
    chelsea: np.ndarray,
    astronaut_points: np.ndarray,
    chelsea_points: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(image, reference landmarks) for each real face: a person and a cat."""
    if request.param == "astronaut":
        return astronaut, astronaut_points
    return chelsea, chelsea_points


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder beside the repository; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def random_face() -> np.ndarray:
    """68 points spread inside a 512x512 image (valid for file round trips, not a face shape)."""
    rng = np.random.default_rng(0)
    return rng.uniform(20, 490, size=(68, 2)).astype(np.float32)


@pytest.fixture(scope="session")
def batch_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real grid for ``faceshot batch``: the cat and a copy of it under another name
    (both with the hand-placed landmarks), and two short clips of the demo's astronaut."""
    from faceshot.demo_clip import write_driving_clip
    from faceshot_core.images import save_image
    from faceshot_core.sample_data import chelsea, chelsea_landmarks_path

    folder = tmp_path_factory.mktemp("batch-inputs")
    save_image(folder / "cat.png", chelsea())
    shutil.copyfile(chelsea_landmarks_path(), folder / "cat.json")
    shutil.copyfile(folder / "cat.png", folder / "kitten.png")
    shutil.copyfile(folder / "cat.json", folder / "kitten.json")
    write_driving_clip(folder / "d1.mp4", 8)
    write_driving_clip(folder / "d2.mp4", 10)
    return folder
