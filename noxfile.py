"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s types``, ``nox -s bench``.

CI runs the README's test command (``.ci/run``); these sessions are the same checks in
isolated environments, plus benchmarks.  Plugins get their own sessions as they arrive.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "types", "tests", "example_plugin", "plugin_wheels"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The fast suite: pyproject's addopts leave out slow and GPU tests.

    ``nox -s tests -- -m slow`` runs the slow ones, ``-- -m "slow or not slow"`` everything.
    """
    session.install("torch==2.13.0")  # the CPU wheel here; a bare `torch` pulls CUDA packages
    session.install("-e", ".[test,match]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy over every package and the example plugin at Python 3.10 (pyproject.toml)."""
    session.install("-e", ".", "-e", "examples/faceshot-example-backend", "mypy>=1.10")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: each script prints a table with ratios against its in-process baseline."""
    session.install("-e", ".[test,ray]")
    for script in ("bench_retarget.py", "bench_quality.py", "bench_detection.py", "bench_memory.py",
                   "bench_warp.py", "bench_batch.py"):  # fmt: skip
        session.run("python", f"benchmarks/{script}")


@nox.session
def bench_matching(session: nox.Session) -> None:
    """Matcher feature extraction with full-size random-weight SD 1.5 (about 5 minutes on CPU)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[test,match]")
    session.run("python", "benchmarks/bench_matching.py", *session.posargs)


@nox.session
def example_plugin(session: nox.Session) -> None:
    """Install the example plugin in a fresh environment, run the conformance kit against it,
    and animate with it through the real entry point (`faceshot run --backend puppet`)."""
    example = "examples/faceshot-example-backend"
    session.install("-e", ".", "-e", example, "pytest>=9")
    session.run("pytest", f"{example}/tests", "-q")
    session.run("faceshot", "backends")
    demo = f"{session.create_tmp()}/demo"
    session.run("faceshot", "demo", "-o", demo, "--frames", "12", "--overwrite", "-q")
    session.run(
        "faceshot", "run", "-r", f"{demo}/reference.png", "-l", f"{demo}/reference.json",
        "-d", f"{demo}/driving.mp4", "-o", f"{demo}/puppet.mp4", "--backend", "puppet",
        "--option", "border=reflect", "--overwrite",
    )  # fmt: skip


@nox.session
def plugin_wheels(session: nox.Session) -> None:
    """Build wheels of faceshot and of the GPU plugins into a local folder, install
    `faceshot[mofa,aniportrait]` from it in a fresh environment (dependencies from the package
    index), and check that `faceshot backends -v` lists each backend with the files it needs."""
    wheels = f"{session.create_tmp()}/wheels"
    session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ".",
                "plugins/mofa", "plugins/aniportrait")  # fmt: skip
    session.install("torch==2.13.0")  # the CPU wheel here; a bare `torch` pulls CUDA packages
    session.install("--find-links", wheels, "faceshot[mofa,aniportrait]")
    listing = str(session.run("faceshot", "backends", "-v", silent=True, env={"COLUMNS": "200"}))
    needed = ("mofa", "ckpt_iter_42000.pth.tar", "FACESHOT_MOFA_WEIGHTS",
              "aniportrait", "pose_guider.pth", "FACESHOT_ANIPORTRAIT_WEIGHTS")  # fmt: skip
    for word in needed:
        if word not in listing:
            session.error(f"`faceshot backends -v` does not mention {word!r}:\n{listing}")
    session.run("python", "-c", "import faceshot_mofa.pipeline, faceshot_aniportrait.pipeline")
