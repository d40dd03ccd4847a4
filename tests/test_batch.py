"""``faceshot batch``: jobs files, the local executor, resume, failures, retries, reports.

The grid is small and real: scikit-image's cat (with its hand-placed landmarks) and a copy of
it, against two short clips of the demo's astronaut, with the ``warp`` backend.  Failures come
from a test plugin (``faulty``) installed for the test as a real distribution on a temporary
``sys.path`` entry, so the spawned worker processes find it the way they find any plugin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faceshot.batch import BatchEvent, Job, JobsFileError, load_jobs, run_batch
from faceshot.batch.local import LocalExecutor
from faceshot.batch.plan import plan
from faceshot.cli.main import main
from faceshot_core import plugins
from faceshot_core.video import iter_frames

FAULTY_PLUGIN = """
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from faceshot_backends import BackendOptions, Capabilities, PerFrameBackend
from faceshot_core.hookspecs import hookimpl


class FaultyOptions(BackendOptions):
    fault: Literal["none", "raise"] = "none"
    delay: float = Field(default=0.0, ge=0.0, le=5.0)


class FaultyBackend(PerFrameBackend):
    name: ClassVar[str] = "faulty"
    description: ClassVar[str] = "test backend: fails or dawdles on request"
    Options: ClassVar[type[BackendOptions]] = FaultyOptions
    capabilities: ClassVar[Capabilities] = Capabilities(temporal="per_frame")

    def prepare(self, request: Any) -> Any:
        if self.options.fault == "raise":
            raise RuntimeError("the faulty backend broke on purpose")
        return request.reference_image

    def render(self, state: Any, points: Any) -> Any:
        time.sleep(self.options.delay)
        return state


@hookimpl
def register_backends(register: Any) -> None:
    register(FaultyBackend)
"""


@pytest.fixture
def inputs(batch_inputs: Path) -> Path:
    return batch_inputs


@pytest.fixture
def faulty_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``faulty`` backend, installed as a distribution on a temporary path."""
    site = tmp_path / "site"
    info = site / "faceshot_faulty-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faceshot-faulty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[faceshot]\nfaulty = faceshot_faulty_plugin\n")
    (site / "faceshot_faulty_plugin.py").write_text(FAULTY_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    plugins.reset()
    yield
    sys.modules.pop("faceshot_faulty_plugin", None)
    plugins.reset()


def grid_file(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body)
    return path


GRID = """
defaults:
  settings: {max_frames: 6}
grid:
  references:
    - {image: cat.png, landmarks: cat.json}
    - {image: kitten.png, landmarks: kitten.json}
  drivings: [d1.mp4, d2.mp4]
  backends: [warp]
"""


def test_yaml_grid_and_list_csv_and_their_mistakes(inputs: Path) -> None:
    yaml_file = grid_file(inputs, "grid.yaml", GRID + """
jobs:
  - {reference: cat.png, landmarks: cat.json, driving: d1.mp4, backend: landmarks,
     settings: {head_motion: 0.5}}
""")  # fmt: skip
    jobs = load_jobs(yaml_file)
    assert [f"{j.backend}/{j.name}" for j in jobs] == [
        "warp/cat__d1", "warp/cat__d2", "warp/kitten__d1", "warp/kitten__d2", "landmarks/cat__d1",
    ]  # fmt: skip
    assert jobs[0].settings == {"max_frames": 6} and jobs[0].landmarks == inputs / "cat.json"
    assert jobs[-1].run_settings().head_motion == 0.5
    csv_file = grid_file(inputs, "jobs.csv", "reference,driving,backend,landmarks,options,"
                         "max_frames\ncat.png,d2.mp4,warp,cat.json,\"{\"\"mouth_interior\"\": "
                         "false}\",4\n")  # fmt: skip
    (job,) = load_jobs(csv_file)
    assert job.options == {"mouth_interior": False} and job.settings == {"max_frames": 4}

    mistakes = {
        "jobs:\n  - {reference: nope.png, driving: d1.mp4}\n": "the reference .*nope.png does not",
        "jobs:\n  - {reference: cat.png, driving: d1.mp4, colour: red}\n": "unknown key.*colour",
        "jobs:\n  - {reference: cat.png, driving: d1.mp4, settings: {head_motoin: 1}}\n":
            "no setting 'head_motoin'.*did you mean 'head_motion'",
        "jobs:\n  - {reference: cat.png, driving: d1.mp4, settings: {overwrite: true}}\n":
            "the batch sets overwrite itself",
        "grid: [1, 2\n": "not valid YAML",
        "jobs:\n  - {reference: cat.png, driving: d1.mp4}\n  - {reference: cat.png, driving: "
        "d1.mp4, settings: {seed: 3}}\n": "two jobs write warp/cat__d1",
    }  # fmt: skip
    for body, pattern in mistakes.items():
        with pytest.raises(JobsFileError, match=pattern):
            load_jobs(grid_file(inputs, "bad.yaml", body))


def test_local_batch_outputs_reports_and_resume(inputs: Path, tmp_path: Path) -> None:
    jobs = grid_file(inputs, "grid.yaml", GRID)
    out = tmp_path / "out"
    events: list[BatchEvent] = []
    result = run_batch(jobs, out, executor=LocalExecutor(2), evaluate=False, events=events.append)
    assert (result.total, result.done, result.failed, result.skipped) == (4, 4, 0, 0)
    for name in ("cat__d1", "cat__d2", "kitten__d1", "kitten__d2"):
        folder = out / "warp" / name
        record = json.loads((folder / "job.json").read_text())
        assert record["status"] == "done" and record["frames"] == 6
        assert len(list(iter_frames(folder / "result.mp4"))) == 6
    assert not list(out.rglob("*.partial*")), "no temporary files left"
    report = (out / "report.csv").read_text().splitlines()
    assert report[0].startswith("key,backend,reference,driving,status") and len(report) == 5
    assert (out / "contact_warp.png").is_file()
    # each driving clip was detected once, in the parent, into the cache all jobs read
    assert len(list((out / ".cache" / "driving").glob("*.npz"))) == 2
    started = {e.key for e in events if e.kind == "started"}
    assert started == {"warp/cat__d1", "warp/cat__d2", "warp/kitten__d1", "warp/kitten__d2"}

    events.clear()
    again = run_batch(jobs, out, executor=LocalExecutor(2), evaluate=False, events=events.append)
    assert (again.skipped, again.done, events) == (4, 4, [])
    changed = grid_file(inputs, "grid2.yaml", GRID.replace("max_frames: 6", "max_frames: 5"))
    third = run_batch(changed, out, executor=LocalExecutor(1), evaluate=False)
    assert third.skipped == 0 and third.done == 4  # other settings: every job runs again


def test_failing_jobs_are_reported_and_the_rest_complete(
    inputs: Path, tmp_path: Path, faulty_plugin: None
) -> None:
    bad_landmarks = inputs / "bad.json"
    bad_landmarks.write_text('{"points": [[1, 2]], "image_size": [451, 300]}')
    jobs = [
        Job(reference=inputs / "cat.png", driving=inputs / "d1.mp4", backend="warp",
            landmarks=inputs / "cat.json", settings={"max_frames": 4}),
        Job(reference=inputs / "kitten.png", driving=inputs / "d1.mp4", backend="faulty",
            landmarks=inputs / "kitten.json", options={"fault": "raise"}),
        Job(reference=inputs / "cat.png", driving=inputs / "d2.mp4", backend="warp",
            landmarks=bad_landmarks),
    ]  # fmt: skip
    events: list[BatchEvent] = []
    result = run_batch(jobs, tmp_path / "out", executor=LocalExecutor(2), retries=1,
                       evaluate=False, events=events.append)  # fmt: skip
    assert (result.done, result.failed) == (1, 2)
    crashed = result.outcomes["faulty/kitten__d1"]
    assert crashed["kind"] == "crash" and crashed["attempts"] == 2  # tried again once
    assert "broke on purpose" in crashed["error"]
    user = result.outcomes["warp/cat__d2"]
    assert user["kind"] == "user" and user["attempts"] == 1  # the same on every try: not retried
    assert "expected points of shape" in user["error"]
    assert [e.key for e in events if e.kind == "retry"] == ["faulty/kitten__d1"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())["jobs"]
    assert {r["key"]: r["status"] for r in report} == {
        "warp/cat__d1": "done", "faulty/kitten__d1": "failed", "warp/cat__d2": "failed",
    }  # fmt: skip


def test_a_worker_killed_mid_job_is_retried(
    inputs: Path, tmp_path: Path, faulty_plugin: None
) -> None:
    jobs = [
        Job(reference=inputs / name, driving=inputs / "d1.mp4", backend="faulty",
            landmarks=inputs / name.replace(".png", ".json"), options={"delay": 0.3})
        for name in ("cat.png", "kitten.png")
    ]  # fmt: skip
    executor = LocalExecutor(2)
    killed: list[str] = []

    def kill_first(event: BatchEvent) -> None:
        if event.kind == "started" and event.key == "faulty/cat__d1" and not killed:
            killed.append(event.worker)
            os.kill(executor.pid_of(event.worker), signal.SIGKILL)

    result = run_batch(jobs, tmp_path / "out", executor=executor, retries=2, evaluate=False,
                       events=kill_first)  # fmt: skip
    assert killed and result.done == 2 and result.failed == 0
    assert result.outcomes["faulty/cat__d1"]["attempts"] == 2
    landmarks = np.load(tmp_path / "out" / "faulty" / "cat__d1" / "result_landmarks.npz")
    assert landmarks["points"].shape == (8, 68, 2)


def test_cli_batch_runs_and_reports_failures(inputs: Path, tmp_path: Path, capsys) -> None:
    jobs = grid_file(inputs, "one.yaml", "jobs:\n  - {reference: cat.png, landmarks: cat.json, "
                     "driving: d1.mp4, settings: {max_frames: 3}}\n  - {reference: cat.png, "
                     "landmarks: bad.json, driving: d2.mp4}\n")  # fmt: skip
    (inputs / "bad.json").write_text("{}")
    code = main(["batch", str(jobs), "-o", str(tmp_path / "out"), "--workers", "1", "--no-eval",
                 "--quiet"])  # fmt: skip
    assert code == 1
    assert (tmp_path / "out" / "warp" / "cat__d1" / "result.mp4").is_file()
    assert main(["batch", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o2")]) == 2
    assert "jobs file" in capsys.readouterr().err


def test_plan_folders_and_fingerprints(inputs: Path, tmp_path: Path) -> None:
    job = Job(reference=inputs / "cat.png", driving=inputs / "d1.mp4")
    (first,) = plan([job], tmp_path)
    assert first.folder == tmp_path / "warp" / "cat__d1" and not first.is_done()
    other = job.model_copy(update={"settings": {"seed": 2}})
    assert plan([other], tmp_path)[0].fingerprint != first.fingerprint


def test_each_job_gets_its_figures_in_eval_json_and_the_report(
    inputs: Path, tmp_path: Path
) -> None:
    job = Job(
        reference=inputs / "cat.png", driving=inputs / "d2.mp4", landmarks=inputs / "cat.json"
    )
    result = run_batch([job], tmp_path / "out", executor=LocalExecutor(1), evaluate=True)
    assert result.done == 1
    folder = tmp_path / "out" / "warp" / "cat__d2"
    figures = {f["key"]: f for f in json.loads((folder / "eval.json").read_text())["figures"]}
    assert figures["anatomy.violations"]["value"] == 0.0  # the retargeting guarantees it
    assert figures["motion.mouth_correlation"]["value"] is not None  # the driving was given
    # dlib finds no cat: nothing to compare, and every frame counted as without a face
    assert figures["point_tracking.nme"]["value"] is None
    assert figures["point_tracking.frames_without_face"]["value"] == 10
    columns = (tmp_path / "out" / "report.csv").read_text().splitlines()[0].split(",")
    assert "eval.anatomy.violations" in columns and "eval.point_tracking.nme" in columns


def test_ctrl_c_stops_cleanly_and_a_rerun_continues(
    inputs: Path, tmp_path: Path, faulty_plugin: None
) -> None:
    """SIGINT to ``faceshot batch`` mid-batch: exit 130, no partial file, the rerun finishes."""
    jobs = grid_file(tmp_path, "slow.yaml", "\n".join(
        ["jobs:"] + [f"  - {{reference: {inputs}/{ref}.png, landmarks: {inputs}/{ref}.json, "
                     f"driving: {inputs}/{clip}.mp4, backend: faulty, options: {{delay: 0.25}}}}"
                     for ref in ("cat", "kitten") for clip in ("d1", "d2")]) + "\n")  # fmt: skip
    out = tmp_path / "out"
    command = [sys.executable, "-m", "faceshot", "batch", str(jobs), "-o", str(out),
               "--workers", "1", "--no-eval", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("faulty/*/job.json")):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not list(out.rglob("*.partial*")), "no half-written file"
    finished = [p for p in out.glob("faulty/*/job.json") if '"done"' in p.read_text()]
    assert 1 <= len(finished) < 4
    rerun = run_batch(jobs, out, executor=LocalExecutor(1), evaluate=False)
    assert rerun.skipped == len(finished) and rerun.done == 4 and rerun.failed == 0
