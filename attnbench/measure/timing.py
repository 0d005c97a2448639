"""Wall time with torch.utils.benchmark: warm-up, then adaptive blocks until IQR/median < 10%.

Timer pins the thread count for the measurement (we always pass it explicitly) and synchronizes
the accelerator at block edges, so CUDA work is waited for. Samples are seconds per call, one per
block; a block repeats the call enough times that timer overhead is negligible.
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.benchmark import Timer

NOISY_IQR_FRACTION = 0.10  # torch.utils.benchmark's own threshold for a noisy measurement
MIN_QUIET_SAMPLES = 5  # fewer samples than this cannot show a spread: the timing counts as noisy


@dataclass(frozen=True)
class Timing:
    samples_s: tuple[float, ...]  # seconds per call, one per block
    calls_per_sample: int

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_s) * 1e3

    @property
    def iqr_ms(self) -> float:
        if len(self.samples_s) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples_s, n=4, method="inclusive")
        return (q3 - q1) * 1e3

    @property
    def noisy(self) -> bool:
        return len(self.samples_s) < MIN_QUIET_SAMPLES or self.iqr_ms > NOISY_IQR_FRACTION * self.median_ms


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(call: Callable[[], object], device: torch.device, *, min_calls: int = 3,
            min_seconds: float = 0.1) -> None:
    """Absorb first-call costs (allocator growth, oneDNN/cuBLAS set-up, autotuning)."""
    start, calls = time.perf_counter(), 0
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        call()
        calls += 1
    _synchronize(device)


def time_call(call: Callable[[], object], device: torch.device, *, threads: int,
              min_time_s: float, max_time_s: float) -> Timing:
    """Median/IQR of `call` after warm-up; stops early once IQR/median < 10% past min_time_s."""
    warm_up(call, device)
    timer = Timer(stmt="call()", globals={"call": call}, num_threads=threads)
    measurement = timer.adaptive_autorange(threshold=NOISY_IQR_FRACTION, min_run_time=min_time_s,
                                           max_run_time=max_time_s)
    return Timing(tuple(measurement.times), measurement.number_per_run)


@functools.cache
def matmul_peak_flops_per_s(device: str, dtype: str, threads: int) -> float:
    """This machine's dense matmul rate for a dtype: the yardstick for achieved FLOP/s.

    The GEMM grows until one call takes 20 ms (so it is compute-bound), capped at 4096 on CPU
    and 8192 on GPU; measured once per process and (device, dtype, threads).
    """
    dev, dt = torch.device(device), getattr(torch, dtype)
    cap = 8192 if dev.type == "cuda" else 4096
    n = 256
    while True:
        a = torch.randn(n, n, device=dev).to(dt)
        b = torch.randn(n, n, device=dev).to(dt)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(dev)
        if time.perf_counter() - start >= 0.02 or n >= cap:
            break
        n *= 2
    timing = time_call(lambda: torch.mm(a, b), dev, threads=threads, min_time_s=0.2, max_time_s=1.0)
    return 2 * n**3 / (timing.median_ms / 1e3)
