"""The Ray executor: one actor per GPU of the cluster, each holding its loaded animators.

Ray does the scheduling and the networking: an actor asks for ``num_gpus=1`` (or one CPU on a
cluster without GPUs) and Ray places it on a node that has one.  Each actor is a
:class:`~faceshot.batch.execute.JobRunner`, so an animator is loaded once per actor and serves
all the jobs sent to it.  Outputs are written by the actors straight into the batch's output
folder, which must therefore be a path every node sees (a shared file system).  An actor that
dies (its node lost, the process killed, out of memory) makes its job count as crashed; the
job is retried on a fresh actor, within the batch's retry limit.

``faceshot[ray]`` installs Ray; the nodes need faceshot (and the plugins the jobs use) too.
"""

from __future__ import annotations

from typing import Any

from faceshot.batch.dispatch import Dispatch
from faceshot.batch.execute import JobRunner, WorkerConfig
from faceshot_core.errors import MissingDependencyError

POLL_S = 0.5


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "the Ray executor needs Ray: pip install 'faceshot[ray]'"
        ) from None
    return ray


class _Actor:
    """The body of a Ray actor: a job runner that lives as long as the actor."""

    def __init__(self, config: WorkerConfig) -> None:
        self.runner = JobRunner(config)

    def run(self, planned: Any) -> dict[str, Any]:
        return self.runner.run(planned)

    def close(self) -> None:
        self.runner.close()


class RayExecutor:
    """Run a batch on a Ray cluster (``address``), or on a local one started for the batch."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers
        self._ray = _ray()
        self._owns_cluster = False
        self.actors: dict[str, Any] = {}  # worker name -> actor handle, while a batch runs

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return
        ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False)  # fmt: skip
        self._owns_cluster = True

    def _actor_options(self) -> tuple[dict[str, Any], int]:
        """Resources per actor and how many actors: one per GPU, else one per CPU asked for."""
        resources = self._ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus:
            return {"num_gpus": 1}, self.workers or gpus
        return {"num_cpus": 1}, self.workers or max(1, int(resources.get("CPU", 1)))

    def describe(self) -> str:
        return f"ray: {'cluster at ' + self.address if self.address else 'local cluster'}"

    def run(self, dispatch: Dispatch, config: WorkerConfig) -> None:
        """Run every job of ``dispatch`` to its final outcome (or until interrupted)."""
        ray = self._ray
        self._connect()
        options, count = self._actor_options()
        actor_cls = ray.remote(**options)(_Actor)
        count = max(1, min(count, len(dispatch.jobs)))
        actors = self.actors = {f"actor-{i}": actor_cls.remote(config) for i in range(count)}
        idle = set(actors)
        pending: dict[Any, str] = {}  # object ref -> actor name

        def send(name: str, job: Any) -> None:
            pending[actors[name].run.remote(job)] = name

        try:
            while not dispatch.finished:
                dispatch.hand_out(idle, send)
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in done:
                    name = pending.pop(ref)
                    try:
                        dispatch.finished_on(name, ray.get(ref))
                    except ray.exceptions.RayActorError as exc:
                        dispatch.lost(name, f"Ray actor died during the job: {_first(exc)}")
                        actors[name] = actor_cls.remote(config)
                    except ray.exceptions.RayError as exc:
                        dispatch.finished_on(name, {"status": "failed", "kind": "crash",
                                                    "error": _first(exc)})  # fmt: skip
                    idle.add(name)
        finally:
            for actor in actors.values():
                ray.kill(actor)
            if self._owns_cluster:
                ray.shutdown()


def _first(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__
