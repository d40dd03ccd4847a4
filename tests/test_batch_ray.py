"""``faceshot batch --executor ray`` on a local Ray cluster started by the test.

The same grid as the local executor's test gives the same outputs (the same reposed landmarks,
the same decoded frames), and an actor killed under a job makes that job run again elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceshot.batch import BatchEvent, load_jobs, run_batch
from faceshot.batch.local import LocalExecutor
from faceshot_core.video import iter_frames

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'faceshot[ray]')")

from faceshot.batch.ray_executor import RayExecutor  # noqa: E402

GRID = """
defaults:
  settings: {max_frames: 5}
grid:
  references:
    - {image: cat.png, landmarks: cat.json}
    - {image: kitten.png, landmarks: kitten.json}
  drivings: [d1.mp4]
  backends: [warp]
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture
def jobs(batch_inputs: Path) -> Path:
    path = batch_inputs / "ray_grid.yaml"
    path.write_text(GRID)
    return path


def frames(video: Path) -> np.ndarray:
    return np.stack(list(iter_frames(video)))


def test_ray_gives_the_local_executors_outputs(cluster: Any, jobs: Path, tmp_path: Path) -> None:
    local = run_batch(jobs, tmp_path / "local", executor=LocalExecutor(1), evaluate=False)
    remote = run_batch(jobs, tmp_path / "ray", executor=RayExecutor(workers=2), evaluate=False)
    assert (local.done, remote.done, remote.failed) == (2, 2, 0)
    for job in load_jobs(jobs):
        a = tmp_path / "local" / job.backend / job.name
        b = tmp_path / "ray" / job.backend / job.name
        np.testing.assert_array_equal(np.load(a / "result_landmarks.npz")["points"],
                                      np.load(b / "result_landmarks.npz")["points"])  # fmt: skip
        np.testing.assert_array_equal(frames(a / "result.mp4"), frames(b / "result.mp4"))
    again = run_batch(jobs, tmp_path / "ray", executor=RayExecutor(workers=2), evaluate=False)
    assert again.skipped == 2


def test_a_killed_actor_loses_only_its_job(cluster: Any, jobs: Path, tmp_path: Path) -> None:
    executor = RayExecutor(workers=2)
    killed: list[str] = []

    def kill_first(event: BatchEvent) -> None:
        if event.kind == "started" and not killed:
            killed.append(event.key)
            ray.kill(executor.actors[event.worker], no_restart=True)

    result = run_batch(jobs, tmp_path / "out", executor=executor, retries=1, evaluate=False,
                       events=kill_first)  # fmt: skip
    assert killed and (result.done, result.failed) == (2, 0)
    assert result.outcomes[killed[0]]["attempts"] == 2
