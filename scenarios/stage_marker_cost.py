"""What the stage markers cost a timed call: the time of one `with stage(...)` when nothing
listens (no profile, no FLOP count, no profiler), times how many stages a call enters, over the
call's median time. Run it alone on the machine.

    python scenarios/stage_marker_cost.py > reports/measured/profile-36-markers.md

A bound, not a difference of two noisy timings: the markers' whole cost is the Python they run,
timed here millions of times. `attnbench ab BASE HEAD` (the commit before the markers against the
one that adds them) times the same calls directly; its report sits beside this one.
"""

from __future__ import annotations

import timeit

import torch
import torch.utils.benchmark as benchmark

from attnbench.execute.calls import make_call
from attnbench.measure.stages import Recorder, recording
from attnbench.methods.contract import Shape, stage
from attnbench.methods.registry import create_method

METHODS = {"skyformer": {}, "sbm": {"density": 0.01}, "smartbird": {}, "nystromformer": {}, "performer": {},
           "linear": {}, "full-explicit": {}, "bigbird": {}, "reformer": {}}
N = 1024


class _Counting(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.entered = 0

    def enter(self, name: str) -> None:
        self.entered += 1
        super().enter(name)


def marker_seconds() -> float:
    """One stage entered and left with nothing listening: the best of 7 runs of a million."""
    def once():
        with stage("a stage"):
            pass
    return min(timeit.repeat(once, number=1_000_000, repeat=7)) / 1_000_000


def main() -> None:
    cost = marker_seconds()
    print(f"# What the stage markers cost a timed call (n = {N}, batch 1, 4 heads of 64, float32, forward, "
          f"{torch.get_num_threads()} threads)\n")
    print(f"One stage entered and left with nothing listening: **{cost * 1e9:.0f} ns** (best of 7 x 10^6).\n")
    print("| method | stages entered per call | call median (ms) | markers' cost | share of the call |")
    print("|---|---:|---:|---:|---:|")
    for name, params in METHODS.items():
        method = create_method(name, **params)
        shape = Shape(1, 4, N, 64)
        generator = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 4, N, 64, generator=generator) for _ in range(3))
        fn = method.make(shape, device=torch.device("cpu"), dtype=torch.float32, generator=generator)
        call = make_call(fn, q, k, v, "forward")
        counting = _Counting()
        with recording(counting):
            call()
        median = benchmark.Timer("call()", globals={"call": call}).blocked_autorange(min_run_time=2).median
        spent = counting.entered * cost
        print(f"| {name} | {counting.entered} | {median * 1e3:.3f} | {spent * 1e6:.2f} us | "
              f"{100 * spent / median:.3f}% |")


if __name__ == "__main__":
    main()
