"""Time per call.

CPU: torch.utils.benchmark's Timer (it pins the thread count, which we always pass) after a
warm-up, in adaptive blocks until IQR/median < 10%; a sample is one block, which repeats the call
enough times that the timer's overhead is negligible.

CUDA: CUDA events around every call, on the case's own device and stream (so `cuda:1` times
device 1), after a warm-up. By default the L2 cache is flushed before every timed call (a buffer
of twice the device's L2 is zeroed; the events exclude it), so a call does not find its inputs
cached by the previous one, as in a model where other layers run in between; `l2="warm"` skips
the flush. With `cuda_graphs` the call is captured once in a CUDA graph and its replays are
timed (launch overhead gone); a call that cannot be captured raises Unsupported. A call shorter
than SHORT_CALL_S (a decode step: microseconds of kernels behind a Python call) is timed as a
batch by default: a CUDA graph of many calls, or, where the call cannot be captured, many calls
queued between one pair of events, so the figure is the GPU's time and not the host's launch
time; within a batch the L2 cache stays as the previous call left it. `Timing.method` says which.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from attnbench.measure.statistics import NOISY_IQR_FRACTION, quiet
from attnbench.methods.contract import Unsupported

SHORT_CALL_S = 100e-6  # CUDA: a call shorter than this is timed as a batch of calls (short_calls="batch")
BATCH_S = 1e-3  # ... of about this long on the GPU
MAX_BATCH = 1000
# How a timing was taken (the time_method column)
TIMER, EACH, GRAPH_REPLAYS, GRAPH_BATCH, EVENTS_BATCH = "timer", "events", "graph", "graph-batch", "events-batch"


@dataclass(frozen=True)
class Timing:
    """What a timing measured: seconds per call, one sample per block of calls."""

    samples_s: tuple[float, ...]
    calls_per_sample: int
    method: str = TIMER

    @property
    def samples_ms(self) -> list[float]:
        return [t * 1e3 for t in self.samples_s]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_s) * 1e3

    @staticmethod
    def joined(rounds: "list[Timing]") -> "Timing":
        """One timing of several rounds of one call: every round's samples (seconds per call)."""
        return Timing(tuple(t for timing in rounds for t in timing.samples_s),
                      max(timing.calls_per_sample for timing in rounds), rounds[0].method)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

def warm_up(call: Callable[[], object], device: torch.device, *, min_calls: int = 3,
            min_seconds: float = 0.1) -> None:
    """Absorb first-call costs (allocator growth, oneDNN/cuBLAS set-up, autotuning)."""
    start, calls = time.perf_counter(), 0
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        call()
        calls += 1
    synchronize(device)


_FLUSH_BUFFERS: dict[torch.device, torch.Tensor] = {}


def l2_flusher(device: torch.device) -> Callable[[], object]:
    """A call that evicts the device's L2 cache: zero a buffer of twice its size (256 MiB when
    torch does not give the size). The buffer is made once per device and kept, so a worker can
    make it before it caps the case's memory (attnbench.execute.workers): it is not the case's memory."""
    device = torch.device("cuda", torch.cuda.current_device()) if device.index is None else device
    if device not in _FLUSH_BUFFERS:
        size = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 128 * 2**20
        _FLUSH_BUFFERS[device] = torch.empty(2 * size, dtype=torch.int8, device=device)
    return _FLUSH_BUFFERS[device].zero_


def captured(call: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """`call` captured in a CUDA graph: returns the graph's replay. Warmed up on a side stream first,
    as capture requires."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(side):
            for _ in range(3):
                call()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            call()
    except RuntimeError as exc:  # capture forbids syncs, CPU work and new allocations from outside its pool
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unsupported(f"cannot be captured in a CUDA graph: {first}") from None
    return graph.replay


def batched(call: Callable[[], object], device: torch.device, calls: int) -> tuple[Callable[[], object], str]:
    """`calls` calls of `call` as one: a CUDA graph of them, or, where the call cannot be captured,
    a Python loop that queues them (still timed by one pair of events)."""
    def many() -> None:
        for _ in range(calls):  # each output freed before the next call: one call's memory, not `calls`
            call()
    try:
        return captured(many, device), GRAPH_BATCH
    except Unsupported:
        return many, EVENTS_BATCH


def seconds_per_call(run: Callable[[], object], device: torch.device) -> float:
    """The GPU time per call, between one pair of events around one call, or around ten where one
    is under 1 ms (a launch-bound call's events would time the queue): what decides whether a call
    is short enough to time as a batch. A long call is run once, not ten times."""
    per_call = 0.0
    for calls in (1, 10):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(calls):
            run()
        end.record()
        torch.cuda.synchronize(device)
        per_call = begin.elapsed_time(end) / 1e3 / calls
        if per_call >= 1e-3:
            break
    return per_call


def time_cuda(call: Callable[[], object], device: torch.device, *, min_time_s: float, max_time_s: float,
              l2: str = "cold", cuda_graphs: bool = False, warmup_s: float = 0.1,
              observe: Callable[[], None] | None = None, short_calls: str = "batch") -> Timing:
    """Seconds per call from CUDA events, one sample per call (or per batch of calls, for a call
    shorter than SHORT_CALL_S with short_calls="batch"), until IQR/median < 10% past min_time_s
    (or max_time_s is spent). `observe` is called once the warm-up is done and then while each
    batch of timed calls runs (before it is waited for): what it reads of the GPU (its clock) is
    read while the GPU works, not after it went idle."""
    observe = observe or (lambda: None)
    with torch.cuda.device(device):
        run, method, calls = (captured(call, device), GRAPH_REPLAYS, 1) if cuda_graphs else (call, EACH, 1)
        warm_up(run, device, min_seconds=warmup_s)
        if short_calls == "batch" and not cuda_graphs:
            per_call = seconds_per_call(run, device)
            if per_call < SHORT_CALL_S:
                calls = max(2, min(MAX_BATCH, round(BATCH_S / max(per_call, 1e-7))))
                run, method = batched(call, device, calls)
                warm_up(run, device, min_calls=1, min_seconds=0.0)
        # a batch finds the L2 as its previous call left it: flushed before the batch would be one call in many
        flush = l2_flusher(device) if l2 == "cold" and calls == 1 else None
        samples: list[float] = []
        observe()
        start = time.perf_counter()
        while True:
            events = []
            for _ in range(10):  # samples queued between synchronizations
                if flush is not None:
                    flush()
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                run()
                end.record()
                events.append((begin, end))
            observe()
            torch.cuda.synchronize(device)
            samples += [begin.elapsed_time(end) / 1e3 / calls for begin, end in events]
            spent = time.perf_counter() - start
            if spent >= max_time_s or (spent >= min_time_s and quiet(samples)):
                return Timing(tuple(samples), calls, method)


def time_call(call: Callable[[], object], device: torch.device, *, threads: int,
              min_time_s: float, max_time_s: float, l2: str = "cold", cuda_graphs: bool = False,
              warmup_s: float = 0.1, observe: Callable[[], None] | None = None, short_calls: str = "batch",
              warm: bool = True) -> Timing:
    """Median/IQR of `call` after warm-up; stops early once IQR/median < 10% past min_time_s.
    On CUDA, events (see time_cuda); `l2`, `cuda_graphs`, `observe` and `short_calls` apply there only.
    `warm=False`: a later round of a call already warmed up (CPU; CUDA warms every time, for its set-up)."""
    if device.type == "cuda":
        return time_cuda(call, device, min_time_s=min_time_s, max_time_s=max_time_s, l2=l2, cuda_graphs=cuda_graphs,
                         warmup_s=warmup_s, observe=observe, short_calls=short_calls)
    if cuda_graphs:
        raise Unsupported("--cuda-graphs captures CUDA work; this case runs on the CPU")
    if warm:
        warm_up(call, device, min_seconds=warmup_s)
    # Imported here, never at module level: up to torch 2.11 importing it asks the accelerator
    # whether a device is there, which in the workers' template breaks CUDA in every forked worker.
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="call()", globals={"call": call}, num_threads=threads)
    measurement = timer.adaptive_autorange(threshold=NOISY_IQR_FRACTION, min_run_time=min_time_s,
                                           max_run_time=max_time_s)
    return Timing(tuple(measurement.times), measurement.number_per_run)


# (device, dtype, threads) -> the GEMM size of the yardstick, found in this process or handed to it
# by the process that starts it (attnbench.execute.workers): a sweep searches each size once.
# The size is kept, never the rate: the rate is measured beside every case (gemm_rates).
GEMM_SIZES: dict[tuple[str, str, int], int] = {}
GEMM_CALLS = 3  # timed GEMMs per size in one burst
GEMM_CALL_S = 0.01  # the yardstick's largest GEMM takes about this long: compute-bound, and a burst stays short


def gemm_size(device: str, dtype: str, threads: int) -> int:
    """The yardstick's GEMM size: grown from 256 until one warm call takes GEMM_CALL_S (so it is
    compute-bound), capped at 4096 on CPU and 8192 on GPU; searched once per (device, dtype, threads)."""
    key = (device, dtype, threads)
    if key not in GEMM_SIZES:
        GEMM_SIZES[key] = _grow_gemm(torch.device(device), getattr(torch, dtype), threads)
    return GEMM_SIZES[key]


def _grow_gemm(dev: torch.device, dt: torch.dtype, threads: int) -> int:
    cap = 8192 if dev.type == "cuda" else 4096
    n = 256
    with _threads(dev, threads):
        while True:
            a = b = torch.ones(n, n, device=dev, dtype=dt)
            torch.mm(a, b)  # untimed: a size's first call pays cuBLAS handle creation and lazy loading
            synchronize(dev)
            start = time.perf_counter()
            torch.mm(a, b)
            synchronize(dev)
            if time.perf_counter() - start >= GEMM_CALL_S or n >= cap:
                return n
            n *= 2


def gemm_rates(device: str, dtype: str, threads: int, short: bool = False) -> list[list[float]]:
    """One burst of the machine's dense GEMM rate, the yardstick a case's achieved FLOP/s is a
    fraction of: GEMM_CALLS timed calls at 3/4 of the yardstick's size and at its size (the
    fastest size is not always the largest: caches), each size warmed by one call; `short` (a
    case timed for a fraction of a second, where a full burst would outlast it): one timed call
    at the yardstick's size. The FLOP/s of every call, one list per size."""
    dev, dt = torch.device(device), getattr(torch, dtype)
    largest = gemm_size(device, dtype, threads)
    rates = []
    with _threads(dev, threads):
        for n in (largest,) if short else (largest * 3 // 4, largest):
            a = b = torch.ones(n, n, device=dev, dtype=dt)  # a GEMM's speed does not depend on its values
            torch.mm(a, b)
            calls = []
            for _ in range(1 if short else GEMM_CALLS):
                synchronize(dev)
                start = time.perf_counter()
                torch.mm(a, b)
                synchronize(dev)
                calls.append(2 * n**3 / (time.perf_counter() - start))
            rates.append(calls)
    return rates


@contextlib.contextmanager
def _threads(dev: torch.device, threads: int):
    """torch's intra-op thread count set to the case's for a block (a CPU GEMM otherwise uses every
    core while the case is timed on `threads`)."""
    before = torch.get_num_threads()
    if dev.type == "cpu" and threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
