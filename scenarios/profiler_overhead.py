"""What torch.profiler costs the calls attnbench profile times: the same call's median wall time
plain and under the profiler as the profile pass runs it (stages recorded, input shapes, memory),
and with neither shapes nor memory, interleaved in rounds so that drift of the machine falls on
all alike. Run it alone on the machine.

    python scenarios/profiler_overhead.py > reports/measured/profile-36-overhead.md
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from attnbench.execute.calls import make_call
from attnbench.measure.stages import recording
from attnbench.methods.contract import Shape
from attnbench.methods.registry import create_method

CASES = (("linear", 1024), ("linear", 4096), ("nystromformer", 4096), ("skyformer", 4096), ("performer", 4096),
         ("smartbird", 1024), ("full-explicit", 4096))
SETTINGS = {"plain": None, "profiler, bare": (False, False), "profiler as profile runs it": (True, True)}
ROUNDS, CALLS = 8, 5


def _median_call(call, setting) -> float:
    times = []
    context = profile(activities=[ProfilerActivity.CPU], record_shapes=setting[0], profile_memory=setting[1]) \
        if setting else None
    with recording() if setting else _nothing(), context if context else _nothing():
        for _ in range(CALLS):
            start = time.perf_counter()
            with record_function("call") if setting else _nothing():
                call()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    print(f"# What the profiler costs a profiled call ({ROUNDS} rounds x {CALLS} calls per setting, interleaved; "
          f"batch 1, 4 heads of 64, float32, forward, {torch.get_num_threads()} threads)\n")
    print("| method | n | plain (ms) | " + " | ".join(f"{name} / plain" for name in list(SETTINGS)[1:]) + " |")
    print("|---|---:|---:|" + "---:|" * (len(SETTINGS) - 1))
    for name, n in CASES:
        generator = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 4, n, 64, generator=generator) for _ in range(3))
        fn = create_method(name).make(Shape(1, 4, n, 64), device=torch.device("cpu"), dtype=torch.float32,
                                      generator=generator)
        call = make_call(fn, q, k, v, "forward")
        for _ in range(3):
            call()
        medians = {key: [] for key in SETTINGS}
        for _ in range(ROUNDS):
            for key, setting in SETTINGS.items():
                medians[key].append(_median_call(call, setting))
        plain = statistics.median(medians["plain"])
        ratios = [statistics.median(medians[key]) / plain for key in list(SETTINGS)[1:]]
        print(f"| {name} | {n} | {plain * 1e3:.3f} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()
