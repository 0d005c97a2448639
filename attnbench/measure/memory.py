"""Peak memory one call allocates beyond what existed before it.

CPU: the running sum of the profiler's allocator events (exact bytes requested, including an
op's workspaces and never-touched allocations; unaffected by glibc caching, unlike RSS). The
event API is semi-private in torch 2.13; the public event list drops op-attributed allocations.
CUDA: reset_peak_memory_stats on the case's device, then max_memory_allocated minus the
baseline (the inputs, allocated before); also the caching allocator's reserved peak above its
baseline (what the process really took from the GPU, fragmentation included).
Call after a warm-up so lazy one-off allocations are not counted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Kineto writes 'profiler_start/stop' lines straight to fd 2, and torch's CPU allocator warns
    there about blocks allocated before a profiler started; keep them off the user's screen (and
    off a CSV piped to stdout's terminal). Python's warnings and exceptions do not go through fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_peak_bytes(call: Callable[[], object]) -> int:
    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:  # nbytes() > 0 allocates, < 0 frees
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def cuda_peak_bytes(call: Callable[[], object], device: torch.device) -> tuple[int, int]:
    """(allocated, reserved) peak bytes of `call` on `device` above their levels at entry."""
    with torch.cuda.device(device):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base, base_reserved = torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)
        call()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base,
                torch.cuda.max_memory_reserved(device) - base_reserved)


def peak_bytes(call: Callable[[], object], device: torch.device) -> dict[str, int | None]:
    """Peak bytes allocated during `call` on its device above the level at entry, and on CUDA
    the reserved peak (None on the CPU, whose allocator reserves nothing apart)."""
    if device.type == "cuda":
        allocated, reserved = cuda_peak_bytes(call, device)
        return {"peak_mem_bytes": allocated, "peak_mem_reserved_bytes": reserved}
    return {"peak_mem_bytes": cpu_peak_bytes(call), "peak_mem_reserved_bytes": None}
