"""Performance targets of the baselines, measured in one run (CPU, b=1, h=4, d=64, float32,
forward), as ratios against `full` (SDPA) and against the public implementations:

- at n = 16k: time of longformer, bigbird, sparse_transformer, linformer, performer, linear and
  nystromformer relative to `full`, and the log-log slope of each one's time over n = 2k..16k;
- at n = 4k and 16k: ours / peer time for nystromformer, performer and linformer with the same
  settings (peers need `pip install "attnbench[peers]"`; missing ones are reported as such).

Usage: python scenarios/baseline_targets.py [--quick]
Writes reports/baseline-targets-<time>.csv (every measured case) and a .md summary beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from attnbench.execute.engine import run_cases
from attnbench.judge.summary import loglog_slope
from attnbench.measure.machine import allocator
from attnbench.methods.registry import list_methods
from attnbench.plan.case import MeasureOptions, make_cases

LINEAR_ORDER = ("longformer", "bigbird", "sparse_transformer", "linformer", "performer", "linear", "nystromformer")
PEERS = {"nystromformer": "peer-nystrom-attention", "performer": "peer-performer-pytorch",
         "linformer": "peer-linformer"}


def show(row: dict) -> None:
    print(f"{row['method']} n={row['seq_len']}: {row['status']} {row['time_ms_median'] or 0:.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    allocator.apply("cache")  # the same allocator policy as `attnbench run`
    lengths = [512, 1024, 2048, 4096] if args.quick else [2048, 4096, 8192, 16384]
    big, peer_lengths = lengths[-1], [lengths[-3], lengths[-1]]
    budget = dict(min_time_s=0.3, max_time_s=3.0) if args.quick else dict(min_time_s=1.5, max_time_s=15.0)
    shape = dict(heads=4, head_dim=64)
    peers = [p for p in PEERS.values() if p in list_methods()]
    cases = make_cases(["full", *LINEAR_ORDER], lengths, **shape) + make_cases(peers, peer_lengths, **shape)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path("reports") / f"baseline-targets-{stamp}.csv"
    rows = run_cases(cases, MeasureOptions(metrics=("time",), **budget), output=out, on_row=show).rows

    def ms(method, n):
        return next(r["time_ms_median"] for r in rows if r["method"] == method and r["seq_len"] == n)

    full = ms("full", big)
    lines = [f"# Baselines: performance targets ({stamp}, b=1 h=4 d=64 float32, CPU, full at n={big}: {full:.1f} ms)",
             "", "| method | time / full at n=" + str(big) + " (goal <= 0.2) | log-log slope of time, "
             f"n={lengths[0]}..{big} (goal <= 1.2) |", "|---|---|---|"]
    for method in LINEAR_ORDER:
        times = [ms(method, n) for n in lengths]
        lines.append(f"| {method} | {times[-1] / full:.3f} | {loglog_slope(lengths, times):.2f} |")
    lines += ["", "| ours / peer time (goal <= 1.0) | " + " | ".join(f"n={n}" for n in peer_lengths) + " |",
              "|---|" + "---|" * len(peer_lengths)]
    for ours, peer in PEERS.items():
        cells = [f"{ms(ours, n) / ms(peer, n):.2f}" if peer in peers else "peer not installed" for n in peer_lengths]
        lines.append(f"| {ours} / {peer} | " + " | ".join(cells) + " |")
    summary = out.with_suffix(".md")
    summary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out} and {summary}")


if __name__ == "__main__":
    main()
