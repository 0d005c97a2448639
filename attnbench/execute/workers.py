"""Where cases run. A Launcher turns a case into a row, whatever happens to the case.

`WorkerLauncher` runs every case in a fresh worker process, so no allocator, cache or
thread-pool state carries over from one measured case to the next, and every case gets the
same memory cap. Workers are forked from a template process (multiprocessing's forkserver) that
has imported torch and attnbench (and what the chosen metrics import on first use) and done
nothing else (no CUDA, no accelerator query, no thread pools: tests/execute/test_fork_safety.py), so a
worker starts in milliseconds instead of paying the imports (about 2 s) again, and CUDA works in
it (torch refuses CUDA in a process forked after a CUDA query); if the template dies,
multiprocessing starts a new one for the next worker. The template and the workers check CUDA
through NVML (PYTORCH_NVML_BASED_CUDA_CHECK=1), which creates no CUDA context. This module
imports no torch: a sweep starts the template before it imports torch.
- memory cap: the worker first runs the case's passes on a tiny shape (lazy imports, the
  profiler and thread pools settle), then its address space may grow by at most
  `max_memory_bytes` (RLIMIT_AS), so an allocation past the cap fails inside the case and
  becomes status 'oom'. On a CUDA case the cap is on device memory instead
  (torch.cuda.set_per_process_memory_fraction: the caching allocator refuses to hold more than
  what it held after the warm-up plus the cap, and torch's OutOfMemoryError makes the row 'oom');
  the address-space cap then also leaves room for the device's whole memory, which CUDA maps
  into the process's address space, so that only host allocations can trip it. The timing's
  L2-flush buffer (2 x L2) is made before the cap, so it is not counted; a CUDA graph's private
  pool holds the captured call's own tensors and is counted;
- a worker whose own set-up raises sends the exception's text: the 'crashed' row says it;
- time limit: a case still running after `timeout_s` is killed: status 'timeout';
- a worker that dies (a signal, a segfault, the system's OOM killer) gives status 'crashed'.
- the machine's GEMM rate (the yardstick of machine_peak_fraction on a CPU) is measured by the
  first worker that needs it and handed to every later one, so a timed sweep pays it once (and a
  process that runs several sweeps, once for all of them).
The worker inherits the runner's environment, so the allocator policy (attnbench.measure.machine.allocator)
applies to it and is recorded in its rows.
It is one of the launchers of attnbench.execute.engine.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import threading

from attnbench.methods import BUILTIN
from attnbench.plan.case import Case, Limits, MeasureOptions
from attnbench.results.schema import Row

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
START_TIMEOUT_S = 180.0  # starting the template (importing torch) on a loaded machine
# What the template imports once for all workers: torch, the measuring code and the built-in
# methods. Importing starts no thread and touches no GPU, so forking from it is safe.
PRELOAD = ["torch.profiler", "attnbench.execute.runner", "attnbench.measure.flops",
           "attnbench.measure.memory", "attnbench.measure.timing", "attnbench.measure.error",
           *(f"attnbench.methods.{where.split(':')[0]}" for where in BUILTIN.values())]
# ... and what the chosen metrics import on first use (torch._dynamo for FLOPs and memory, about
# 2 s): set by start_template; None (a launcher made without it) means every metric's.
_metric_imports: list[str] | None = None
# The GEMM yardstick's sizes this process's workers found, handed to every later worker (of this
# launcher or a later one); the rate itself is measured beside every case (attnbench.measure.machine.peaks)
_GEMM_SIZES: dict = {}


def metric_imports(metrics) -> list[str]:
    """The template imports of these metrics (names), each once."""
    from attnbench.metrics import chosen

    return list(dict.fromkeys(module for metric in chosen(metrics) for module in metric.template_imports))


def _context():
    """The forkserver context with its template's imports (spawn where fork is unavailable)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from attnbench.metrics import metric_names

    # torch.cuda.is_available() through NVML creates no CUDA context, so a fork after it keeps
    # CUDA usable; the template (and so every worker) inherits the environment it starts with.
    os.environ.setdefault(NVML_CHECK, "1")
    context = multiprocessing.get_context("forkserver")
    extra = metric_imports(metric_names()) if _metric_imports is None else _metric_imports
    context.set_forkserver_preload([*extra, *PRELOAD])
    return context


def start_template(metrics=None) -> None:
    """Start the workers' template now, in the background, with what the metrics (names; None:
    every metric) need: it imports torch and attnbench while the caller does its own imports and
    builds its cases (a sweep's first worker then waits for what is left of it, not for all of
    it). A time-only sweep (attnbench ab's rounds) thus skips torch._dynamo."""
    global _metric_imports
    _metric_imports = None if metrics is None else metric_imports(metrics)
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        _context()
        threading.Thread(target=forkserver.ensure_running, name="attnbench-template", daemon=True).start()


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _warm_up(case: Case, options: MeasureOptions) -> None:
    """Run the case's passes once on a tiny shape: lazy imports, the profiler and thread pools
    then take their memory before the cap is measured, so the cap is the case's alone. Metrics
    measured in every process (time) are left out: what they cost is a budget of seconds."""
    import dataclasses

    from attnbench.execute.runner import run_case
    from attnbench.metrics import chosen

    tiny = dataclasses.replace(case, method="full", params={}, batch=1, heads=1, seq_len=16, head_dim=8,
                               inputs="random", mode=case.mode, compile="off")
    warm = tuple(m.name for m in chosen(options.metrics) if not m.per_process)
    run_case(tiny, dataclasses.replace(options, metrics=warm, min_time_s=0.0, max_time_s=0.0))


def _cap_device_memory(device: str, max_memory_bytes: int) -> int:
    """Let this process's CUDA caching allocator hold at most what it holds now plus
    `max_memory_bytes` on `device`; returns the device's total memory."""
    import torch

    dev = torch.device(device)
    if dev.index is None:  # torch's memory-fraction call needs an index: "cuda" is the current device
        dev = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(dev).total_memory
    allowed = torch.cuda.memory_reserved(dev) + max_memory_bytes
    torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total), dev)
    return total


def _die_with_parent() -> None:
    """Linux: this worker gets SIGKILL when its parent (the template) exits, which the template does
    when the runner that owns it dies: a killed runner or Ray worker leaves no orphan measuring."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(connection, max_memory_bytes: int | None) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    connection.send("ready")
    case, options, sizes = connection.recv()
    try:
        connection.send(_measure_capped(case, options, sizes, max_memory_bytes))
    except BaseException as exc:  # the worker's own set-up failed: the runner's row says why
        # (said once, in the row: re-raising would print a traceback on the user's terminal)
        connection.send(RAISED + f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500])


RAISED = "raised: "  # what a worker sends instead of a row when its own set-up raised


def _measure_capped(case: Case, options: MeasureOptions, sizes: dict, max_memory_bytes: int | None):
    """(row, GEMM yardstick sizes) of one case, measured under the memory cap."""
    from attnbench.measure.timing import GEMM_SIZES

    GEMM_SIZES.update(sizes)  # what earlier workers of this sweep found: not searched again
    _warm_up(case, options)
    host_cap = max_memory_bytes
    if max_memory_bytes and case.device.startswith("cuda"):
        if options.l2 == "cold":  # the timing's L2-flush buffer is the harness's memory, not the case's
            import torch

            from attnbench.measure.timing import l2_flusher

            l2_flusher(torch.device(case.device))
        host_cap = max_memory_bytes + _cap_device_memory(case.device, max_memory_bytes)
    if host_cap and os.path.exists("/proc/self/status"):
        limit = _virtual_memory_bytes() + host_cap
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from attnbench.execute.runner import run_case  # preloaded by the template: no import cost here

    return run_case(case, options), GEMM_SIZES


class WorkerLauncher:
    """Run each case in a fresh worker process with a memory cap and a time limit.

    `run` may be called from several threads at once (`jobs` cases in parallel, for passes that
    measure no time); `close` stops every worker still running.
    """

    def __init__(self, limits: Limits | None = None, jobs: int = 1) -> None:
        limits = limits or Limits()
        self.max_memory_bytes, self.timeout_s = limits.max_memory_bytes, limits.timeout_s
        self.concurrency = jobs
        self._context = _context()
        self._running: set = set()
        self._lock = threading.Lock()
        self._sizes = _GEMM_SIZES

    def _start(self):
        """A started worker and its connection; raises if none could be started."""
        connection, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self.max_memory_bytes), daemon=True)
        process.start()
        child.close()
        with self._lock:
            self._running.add(process)
        try:
            if connection.poll(START_TIMEOUT_S) and connection.recv() == "ready":
                return process, connection
        except (EOFError, OSError):
            pass
        self._stop(process)
        raise RuntimeError("the measurement worker did not start")

    def _stop(self, process) -> None:
        if process.is_alive():
            process.kill()
        process.join(5)
        with self._lock:
            self._running.discard(process)

    def run(self, case: Case, options: MeasureOptions) -> Row:
        # imported here, not at the top: importing this module must not load torch, so that a
        # sweep starts the template (which imports torch) before its own process imports it
        from attnbench.execute.rows import failure_row

        for attempt in (1, 2):  # a dead template is restarted by multiprocessing: retry once
            try:
                process, connection = self._start()
                break
            except (RuntimeError, OSError, EOFError) as exc:
                if attempt == 2:
                    return failure_row(case, "crashed", f"no worker could be started, twice: {exc}")
        try:
            with self._lock:
                sizes = dict(self._sizes)
            connection.send((case, options, sizes))
            if connection.poll(self.timeout_s):
                answer = connection.recv()
                self._stop(process)
                if isinstance(answer, str):
                    return failure_row(case, "crashed", "the worker " + answer)
                row, sizes = answer
                with self._lock:
                    self._sizes.update(sizes)
                return row
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass  # the worker died mid-case
        else:
            self._stop(process)
            return failure_row(case, "timeout", f"still running after {self.timeout_s:g} s; the worker was stopped")
        process.join(5)
        code = process.exitcode
        self._stop(process)
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (perhaps the system's out-of-memory killer)" if name == "SIGKILL" else ""
            return failure_row(case, "crashed", f"the worker was killed by {name}{hint}")
        return failure_row(case, "crashed", f"the worker exited with code {code}")

    def close(self) -> None:
        with self._lock:
            running = list(self._running)
        for process in running:
            self._stop(process)
