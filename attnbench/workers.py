"""Where cases run. A Launcher turns a case into a row, whatever happens to the case.

`WorkerLauncher` runs every case in a fresh worker process (about 2 s to import torch), so no
allocator, cache or thread-pool state carries over from one measured case to the next, and
every case gets the same memory cap:
- memory cap: the worker first runs the case's passes on a tiny shape (lazy imports, the
  profiler and thread pools settle), then its address space may grow by at most
  `max_memory_bytes` (RLIMIT_AS), so an allocation past the cap fails inside the case and
  becomes status 'oom' (on CUDA, torch's OutOfMemoryError does the same);
- time limit: a case still running after `timeout_s` is killed: status 'timeout';
- a worker that dies (a signal, a segfault, the system's OOM killer) gives status 'crashed'.
The worker inherits the runner's environment, so the allocator policy (attnbench.allocator)
applies to it and is recorded in its rows.
Another launcher (a cluster, say) only needs `run(case, settings) -> row` and `close()`.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import time
from typing import Protocol

from attnbench.case import Case
from attnbench.runner import RESULT_COLUMNS, Settings, case_columns, run_case

START_TIMEOUT_S = 180.0  # importing torch on a loaded machine


class Launcher(Protocol):
    def run(self, case: Case, settings: Settings) -> dict: ...

    def close(self) -> None: ...


def failure_row(case: Case, status: str, error: str) -> dict:
    """A row for a case whose worker could not report one itself."""
    from attnbench.env import environment
    from attnbench.registry import get_method

    row = {**case_columns(case), **dict.fromkeys(RESULT_COLUMNS),
           **dict.fromkeys(get_method(case.method).extra_columns)}
    row.update(status=status, error=error, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    row.update(environment(case.device))
    return row


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _warm_up(case: Case, settings: Settings) -> None:
    """Run the case's passes once on a tiny shape: lazy imports, the profiler and thread pools
    then take their memory before the cap is measured, so the cap is the case's alone."""
    import dataclasses

    tiny = dataclasses.replace(case, method="full", params={}, batch=1, heads=1, seq_len=16, head_dim=8,
                               inputs="random", mode=case.mode)
    run_case(tiny, dataclasses.replace(settings, metrics=tuple(m for m in settings.metrics if m != "time"),
                                       min_time_s=0.0, max_time_s=0.0))


def _worker_main(connection, max_memory_bytes: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    connection.send("ready")
    case, settings = connection.recv()
    _warm_up(case, settings)
    if max_memory_bytes and os.path.exists("/proc/self/status"):
        limit = _virtual_memory_bytes() + max_memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    connection.send(run_case(case, settings))


class WorkerLauncher:
    """Run each case in a fresh worker process with a memory cap and a time limit."""

    def __init__(self, max_memory_bytes: int | None = 3 * 2**30, timeout_s: float = 300.0) -> None:
        self.max_memory_bytes, self.timeout_s = max_memory_bytes, timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._process = self._connection = None

    def _start(self) -> None:
        self._connection, child = self._context.Pipe()
        self._process = self._context.Process(target=_worker_main, args=(child, self.max_memory_bytes), daemon=True)
        self._process.start()
        child.close()
        if not self._connection.poll(START_TIMEOUT_S) or self._connection.recv() != "ready":
            self._stop()
            raise RuntimeError("the measurement worker did not start")

    def _stop(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(5)
        self._process = self._connection = None

    def run(self, case: Case, settings: Settings) -> dict:
        self._start()
        self._connection.send((case, settings))
        try:
            if self._connection.poll(self.timeout_s):
                row = self._connection.recv()
                self._stop()
                return row
        except (EOFError, ConnectionResetError):
            pass  # the worker died mid-case
        else:
            self._stop()
            return failure_row(case, "timeout", f"still running after {self.timeout_s:g} s; the worker was stopped")
        self._process.join(5)
        code = self._process.exitcode
        self._stop()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (perhaps the system's out-of-memory killer)" if name == "SIGKILL" else ""
            return failure_row(case, "crashed", f"the worker was killed by {name}{hint}")
        return failure_row(case, "crashed", f"the worker exited with code {code}")

    def close(self) -> None:
        self._stop()

