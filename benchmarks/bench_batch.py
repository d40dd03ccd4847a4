"""Jobs per minute of ``faceshot batch`` per executor, against the same jobs run in one loop.

Run from the repository root (with ``pip install -e '.[ray]'``)::

    python benchmarks/bench_batch.py [--jobs 8] [--frames 24] [--no-ray]

The grid: scikit-image's cat (with its landmarks) under ``--jobs`` names, against one clip of
the demo's astronaut (``--frames`` frames), with the CPU ``warp`` backend and without the
per-job figures (``--no-eval`` of the CLI), so the table measures the executors, not the
evaluation.  The clip is detected once before any row is timed (every row reads the same
cache), as ``faceshot batch`` itself does.

The baseline runs in this process: one animator loaded once, then ``faceshot.run`` on each job
in a loop, written where ``faceshot batch`` would write.  Each executor row runs the batch from
scratch into a new folder; its time covers what the user waits for (workers or actors started,
jobs, reports).  ``overhead/job`` is (row time - baseline time) / jobs: what the executor
costs per job on top of the work itself, on this machine, where two workers share two cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from faceshot.batch import Job, run_batch
from faceshot.batch.local import LocalExecutor
from faceshot.demo_clip import write_driving_clip
from faceshot.pipeline import load_driving
from faceshot.runner import load_animator, run
from faceshot.settings import RunSettings
from faceshot_core.images import save_image
from faceshot_core.sample_data import chelsea, chelsea_landmarks_path


def make_jobs(folder: Path, count: int, frames: int) -> list[Job]:
    save_image(folder / "cat.png", chelsea())
    shutil.copyfile(chelsea_landmarks_path(), folder / "cat.json")
    write_driving_clip(folder / "clip.mp4", frames)
    jobs = []
    for n in range(count):
        image = folder / f"cat{n:02d}.png"
        shutil.copyfile(folder / "cat.png", image)
        jobs.append(Job(reference=image, driving=folder / "clip.mp4",
                        landmarks=folder / "cat.json"))  # fmt: skip
    return jobs


def baseline(jobs: list[Job], out: Path, cache: Path) -> float:
    """One process, one animator, ``faceshot.run`` per job."""
    started = time.perf_counter()
    with load_animator("warp") as animator:
        for job in jobs:
            folder = out / job.backend / job.name
            folder.mkdir(parents=True, exist_ok=True)
            settings = RunSettings(reference_landmarks=job.landmarks, cache_dir=cache,
                                   overwrite=True)  # fmt: skip
            run(job.reference, job.driving, output=folder / "result.mp4", settings=settings,
                animator=animator)  # fmt: skip
    return time.perf_counter() - started


def timed_batch(jobs: list[Job], out: Path, cache: Path, executor: object) -> float:
    out.mkdir(parents=True)
    (out / ".cache").mkdir()
    shutil.copytree(cache, out / ".cache" / "driving")  # the clip detected once, as batch does
    started = time.perf_counter()
    result = run_batch(jobs, out, executor=executor, evaluate=False)
    elapsed = time.perf_counter() - started
    if result.done != len(jobs):
        raise SystemExit(f"{result.failed} job(s) failed: {result.outcomes}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        jobs = make_jobs(root, args.jobs, args.frames)
        cache = root / "cache"
        load_driving(jobs[0].driving, cache_dir=cache)
        rows = [("one loop (baseline)", baseline(jobs, root / "loop", cache))]
        for workers in (1, 2):
            rows.append((f"local, {workers} worker(s)",
                         timed_batch(jobs, root / f"local{workers}", cache,
                                     LocalExecutor(workers))))  # fmt: skip
        if not args.no_ray:
            import ray

            from faceshot.batch.ray_executor import RayExecutor

            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            try:
                seconds = timed_batch(jobs, root / "ray", cache, RayExecutor(workers=2))
                rows.append(("ray, 2 actors (local cluster)", seconds))
            finally:
                ray.shutdown()
    base = rows[0][1]
    print(f"{args.jobs} jobs, {args.frames} frames each, warp backend, no eval")
    print(f"{'executor':32s} {'seconds':>8s} {'jobs/min':>9s} {'x baseline':>11s} "
          f"{'overhead/job':>13s}")  # fmt: skip
    for name, seconds in rows:
        per_minute = 60.0 * args.jobs / seconds
        overhead = (seconds - base) / args.jobs
        print(f"{name:32s} {seconds:8.1f} {per_minute:9.1f} {base / seconds:11.2f} "
              f"{overhead:+12.2f}s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
