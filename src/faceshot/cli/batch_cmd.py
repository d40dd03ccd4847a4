"""``faceshot batch``: run a grid of jobs locally or on a Ray cluster."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import click

from faceshot.cli.options import quiet_option
from faceshot.cli.progress import say


@click.command()
@click.argument("jobs", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    "outdir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the results (a rerun continues in it).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Worker processes on this machine, or Ray actors.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=None,
    help="Workers (local: one per GPU, else 2; ray: one per GPU of the cluster).",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster to join (e.g. auto or ray://head:10001); default: a local one.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="Further tries of a job that crashed or whose worker died.",
)
@click.option("--no-eval", is_flag=True, help="Skip the per-job figures of `faceshot eval`.")
@quiet_option
def batch(
    jobs: Path,
    outdir: Path,
    executor: str,
    workers: int | None,
    address: str | None,
    retries: int,
    no_eval: bool,
    quiet: bool,
) -> None:
    """Animate every job of JOBS (a .yaml grid or list, or a .csv) into OUTPUT_DIR.

    \b
    Each job writes OUTPUT_DIR/<backend>/<reference>__<driving>/: result.mp4,
    result_landmarks.npz, eval.json and job.json (its record). OUTPUT_DIR gets report.csv,
    report.json and contact_<backend>.png. Finished jobs are skipped when run again with the
    same inputs and settings; Ctrl-C stops cleanly and a rerun continues.
    """
    from faceshot.batch import run_batch
    from faceshot.batch.progress import BatchProgress, progress_display

    if executor == "ray":
        from faceshot.batch.ray_executor import RayExecutor

        chosen: object = RayExecutor(address=address, workers=workers)
    else:
        if address:
            raise click.UsageError("--address is for --executor ray")
        from faceshot.batch.local import LocalExecutor

        chosen = LocalExecutor(workers)
    say(f"faceshot batch: {chosen.describe()}", quiet=quiet)  # type: ignore[attr-defined]
    with ExitStack() as stack:

        def on_plan(total: int, skipped: int) -> BatchProgress:
            progress = BatchProgress(total, skipped)
            stack.enter_context(progress_display(progress, quiet=quiet))
            return progress

        result = run_batch(
            jobs,
            outdir,
            executor=chosen,
            retries=retries,
            evaluate=not no_eval,
            on_plan=on_plan,
            say=lambda line: say(line, quiet=quiet),
        )
    say(
        f"{result.done} of {result.total} jobs done ({result.skipped} of them in an earlier run), "
        f"{result.failed} failed; report: {result.report_csv}",
        quiet=quiet,
    )
    if result.failed:
        for key, outcome in sorted(result.outcomes.items()):
            if outcome["status"] == "failed":
                say(f"  failed: {key}: {outcome['error']}", quiet=quiet)
        raise click.exceptions.Exit(1)
