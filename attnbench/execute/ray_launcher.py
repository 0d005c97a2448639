"""Sweeps on a Ray cluster: each case is a Ray task, isolated as on one machine.

A task asks for one GPU for a CUDA case, or `threads` CPUs for a CPU case, so Ray never puts two
cases on one device or on the same cores (which GPU is Ray's choice: `cuda:N` runs on the task's
GPU, and the row's gpu_uuid names it); the device is checked in the task, on its node. Inside the
task the case runs exactly as `sweep` runs it locally: in a fresh worker process (forked from a
template) with the memory cap and time limit of `Limits`. Rows come back to the driver as tasks
end and the engine writes each one at once. Tasks are not retried: a Ray worker or node lost
mid-case is a `crashed` row with Ray's reason, and the sweep goes on. Every node needs attnbench
(and torch) installed, the same version as the driver's.
"""

from __future__ import annotations

import threading

from attnbench.errors import AttnbenchError
from attnbench.execute.rows import failure_row
from attnbench.plan.case import Case, Limits, MeasureOptions

INSTALL_HINT = "pip install 'attnbench[ray]'"
# Cases in flight at once from this driver; Ray's resource requests decide how many really run.
IN_FLIGHT = 256


def _run_isolated(case: Case, options: MeasureOptions, limits: Limits) -> dict:
    """The Ray task: one case in a fresh worker process with the limits, as `sweep` runs it locally.

    The device is checked here, on the task's node (the driver may have no GPU). Ray shows a task
    the one GPU it was given as cuda:0 (CUDA_VISIBLE_DEVICES), so a CUDA case runs on `cuda`
    whatever index it names; its row keeps the case's device and says in gpu_uuid which board ran it.
    """
    import dataclasses
    import platform

    from attnbench.execute.workers import WorkerLauncher
    from attnbench.plan.case import check_device

    here = dataclasses.replace(case, device="cuda") if case.device.startswith("cuda") else case
    try:
        check_device(here.device)
    except AttnbenchError as exc:
        return failure_row(case, "error", f"on Ray node {platform.node()}: {exc}")
    launcher = WorkerLauncher(limits)
    try:
        row = launcher.run(here, options)
    finally:
        launcher.close()
    row["device"] = case.device
    return row


class RayLauncher:
    """Run cases as Ray tasks. `address`: None starts a Ray instance on this machine; "auto" or
    "HOST:PORT" joins a running cluster (`ray start --head` there first)."""

    def __init__(self, limits: Limits | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise AttnbenchError(f"--executor ray needs Ray: {INSTALL_HINT}") from None
        self.ray, self.limits = ray, limits or Limits()
        self.concurrency = IN_FLIGHT
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         **({} if address else {"object_store_memory": 100 * 2**20}))
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise AttnbenchError(f"cannot reach a Ray cluster at {address!r}: {str(exc).splitlines()[0]}; "
                                     "start one with 'ray start --head' or leave --address out") from None
        self._task = ray.remote(max_retries=0)(_run_isolated)
        self._pending: set = set()
        self._lock = threading.Lock()

    def _resources(self, case: Case) -> dict:
        if case.device.startswith("cuda"):
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_cpus": case.threads or 1}

    def run(self, case: Case, options: MeasureOptions) -> dict:
        ref = self._task.options(**self._resources(case)).remote(case, options, self.limits)
        with self._lock:
            self._pending.add(ref)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # a lost worker or node, a cancelled task
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            return failure_row(case, "crashed", f"the Ray task failed: {type(exc).__name__}: {reason}")
        finally:
            with self._lock:
                self._pending.discard(ref)

    def close(self) -> None:
        """Cancel the tasks still out (their cases get no row), and stop the Ray this launcher started."""
        with self._lock:
            pending = list(self._pending)
        for ref in pending:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # a task that ended meanwhile cannot be cancelled: nothing to do
                pass
        if self._started:
            self.ray.shutdown()
