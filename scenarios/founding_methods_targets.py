"""Performance targets of the founding papers' methods, measured in one run (CPU, b=1, h=4,
d=64, float32, forward), as ratios against full attention measured alongside:

- skyformer at n = 2k..16k: time at 16k relative to `full` (SDPA), and the log-log slope of
  its time over n;
- sbm (fastRG, sampling included) at n = 16k over target densities 0.1%..1%: time relative to
  `full`, and time against the number of sampled edges (a straight line: a linear fit);
- smartbird at n = 8k: peak memory relative to `full-explicit`, and its time split into
  sketch / sampling / sparse attention next to the sampling floor (uniform draws + top-k alone).

Usage: python scenarios/founding_methods_targets.py [--quick]
Writes reports/founding-targets-<time>.csv (every measured case) and a .md summary beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from attnbench.execute.calls import make_inputs
from attnbench.execute.engine import run_cases
from attnbench.judge.summary import loglog_slope
from attnbench.measure.machine import allocator
from attnbench.measure.timing import time_call
from attnbench.methods.smartbird import SmartBirdAttention
from attnbench.plan.case import MeasureOptions, make_cases


def straight_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares y = a + b x: (a, b, R^2)."""
    import numpy as np

    b, a = np.polyfit(xs, ys, 1)
    return float(a), float(b), float(np.corrcoef(xs, ys)[0, 1] ** 2)


def smartbird_split(case, budget: dict) -> dict:
    """Median ms of each Smart Bird phase over all row chunks, and of the sampling floor."""
    q, k, v, generator = make_inputs(case)
    fn: SmartBirdAttention = case.instance().build(case.shape, device=q.device, dtype=q.dtype, generator=generator)
    n, heads = case.seq_len, case.heads
    blocks = [(s, min(s + fn.rows, n)) for s in range(0, n, fn.rows)]
    with torch.no_grad():
        qs, ks = fn.sketch_inputs(q, k)
        sketches = [fn.sketch(qs, ks, a, b) for a, b in blocks]
        indices = [fn.select(s, heads) for s in sketches]
        k_top = min(fn.method.k, n)
        phases = {
            "sketch": lambda: [fn.sketch(*fn.sketch_inputs(q, k), a, b) for a, b in blocks],
            "sampling": lambda: [fn.select(s, heads) for s in sketches],
            "attention": lambda: [fn.attend(q[:, :, a:b], k, v, i) for (a, b), i in zip(blocks, indices)],
            "floor": lambda: [torch.rand(1, heads, b - a, n).topk(k_top, dim=-1, sorted=False) for a, b in blocks],
            "total": lambda: fn(q, k, v),
        }
        return {name: time_call(call, q.device, threads=case.threads, **budget).median_ms
                for name, call in phases.items()}


def show(row: dict) -> None:
    print(f"{row['method']} n={row['seq_len']}: {row['status']} {row['time_ms_median'] or 0:.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    allocator.apply("cache")  # the same allocator policy as `attnbench run`
    big, mid = (4096, 2048) if args.quick else (16384, 8192)
    budget = dict(min_time_s=0.5, max_time_s=4.0) if args.quick else dict(min_time_s=2.0, max_time_s=20.0)
    shape = dict(heads=4, head_dim=64)
    sky_lengths = [big // 8, big // 4, big // 2, big]
    cases = (make_cases(["full", "skyformer"], sky_lengths, **shape)
             + make_cases(["sbm"], [big], {"density": ["0.001", "0.002", "0.005", "0.01"]}, **shape)
             + make_cases(["full-explicit", "smartbird"], [mid], **shape))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path("reports") / f"founding-targets-{stamp}.csv"
    timed = [c for c in cases if c.seq_len != mid]
    rows = run_cases(timed, MeasureOptions(metrics=("time",), **budget), output=out, on_row=show).rows
    rows += run_cases([c for c in cases if c.seq_len == mid], MeasureOptions(metrics=("time", "memory"), **budget),
                      output=out, append=True, on_row=show).rows

    def pick(method, n, **params):
        return next(r for r in rows if r["method"] == method and r["seq_len"] == n
                    and all(r[f"param_{k}"] == v for k, v in params.items()))

    full = pick("full", big)["time_ms_median"]
    sky = [pick("skyformer", n)["time_ms_median"] for n in sky_lengths]
    sbm = [pick("sbm", big, density=d) for d in (0.001, 0.002, 0.005, 0.01)]
    split = smartbird_split(make_cases(["smartbird"], [mid], **shape)[0], budget)
    mem = pick("smartbird", mid)["peak_mem_bytes"] / pick("full-explicit", mid)["peak_mem_bytes"]
    lines = [
        f"# Founding methods: performance targets ({stamp}, n={big}/{mid}, b=1 h=4 d=64 float32, CPU)",
        "",
        "| target | measured | goal |",
        "|---|---|---|",
        f"| skyformer / full time at n={big} | {sky[-1] / full:.3f} | <= 0.1 |",
        f"| skyformer log-log slope of time, n={sky_lengths[0]}..{big} | {loglog_slope(sky_lengths, sky):.2f} "
        "| <= 1.2 |",
        *(f"| sbm / full time at n={big}, density {r['param_density']:.3g} "
          f"(measured {r['density_mean']:.4f}, {r['edges']:.0f} edges) | {r['time_ms_median'] / full:.3f} | "
          f"{'<= 1.0' if r['param_density'] == 0.01 else '<= 0.25' if r['param_density'] == 0.002 else '-'} |"
          for r in sbm),
        "| sbm time = a + b * edges (straight line): a ms, b ms per million edges, R^2 | "
        "{:.0f}, {:.0f}, {:.4f} | R^2 ~ 1 |".format(*straight_line([r["edges"] / 1e6 for r in sbm],
                                                          [r["time_ms_median"] for r in sbm])),
        f"| smartbird / full-explicit peak memory at n={mid} | {mem:.3f} | <= 0.25 |",
        f"| smartbird total / sampling floor at n={mid} | {split['total'] / split['floor']:.2f} | <= 1.5 |",
        "",
        f"Smart Bird split at n={mid} (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in split.items()),
        f"full at n={big}: {full:.1f} ms; skyformer: "
        + ", ".join(f"{n}: {t:.1f} ms" for n, t in zip(sky_lengths, sky)),
    ]
    summary = out.with_suffix(".md")
    summary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out} and {summary}")


if __name__ == "__main__":
    main()
