r"""What a profile report shows, as markdown (the figures of docs/profiling.md come from it).

    python scenarios/profile_summary.py reports/measured/profile-36-founding.csv \
        --versus "sbm clusters=128 density=0.002,linear" > reports/measured/profile-36-founding.md

Per case series (method and parameters): each stage's share of the call at every length, the
exponent of each stage's time against n (a least-squares fit of log time on log n over the
lengths), which stage sets the call's exponent, the share inside the declared stages, and the
profiled total over the time metric's median (both from the same run). Then, for each pair of
series named with --versus A,B at the longest length, how many times slower A is and which of its
stages the difference comes from.
"""

from __future__ import annotations

import argparse
import math
import sys

from attnbench.results.report import load
from attnbench.results.schema import Labeller


def _slope(points: list[tuple[float, float]]) -> float | None:
    points = [(math.log(n), math.log(t)) for n, t in points if t and t > 0]
    if len(points) < 2:
        return None
    mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def series_of(rows: list) -> dict[str, dict]:
    """label -> {"cases": {n: case row}, "stages": {n: {stage: row}}} for ok rows."""
    cases = [r for r in rows if not r.get("stage") and r["status"] == "ok"]
    label = Labeller(cases, with_length=False)
    out: dict[str, dict] = {}
    for row in cases:
        out.setdefault(label(row), {"cases": {}, "stages": {}})["cases"][row["seq_len"]] = row
    by_case = {}
    for row in rows:
        if row.get("stage"):
            by_case.setdefault((row["method"], row["seq_len"], tuple(sorted(
                (k, str(v)) for k, v in row.items() if k.startswith("param_")))), {})[row["stage"]] = row
    for data in out.values():
        for n, row in data["cases"].items():
            key = (row["method"], n, tuple(sorted((k, str(v)) for k, v in row.items() if k.startswith("param_"))))
            data["stages"][n] = by_case.get(key, {})
    return out


def _series_lines(name: str, data: dict) -> list[str]:
    lengths = sorted(data["cases"])
    stage_names = list(dict.fromkeys(s for n in lengths for s in data["stages"][n]))
    lines = [f"### {name}", "", "| stage | " + " | ".join(f"n={n}" for n in lengths) + " | time ~ n^ |",
             "|---|" + "---:|" * (len(lengths) + 1)]
    for stage in stage_names:
        shares = [data["stages"][n].get(stage, {}).get("profile_share") for n in lengths]
        slope = _slope([(n, data["stages"][n].get(stage, {}).get("profile_ms")) for n in lengths])
        cells = ["-" if s is None else f"{100 * s:.1f}%" for s in shares]
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {'-' if slope is None else f'{slope:.2f}'} |")
    call_slope = _slope([(n, data["cases"][n]["profile_ms"]) for n in lengths])
    lines.append("| **profiled call, ms** | " + " | ".join(f"{data['cases'][n]['profile_ms']:.3g}" for n in lengths)
                 + f" | {'-' if call_slope is None else f'{call_slope:.2f}'} |")
    lines.append("| in stages | " + " | ".join(f"{100 * data['cases'][n]['profile_covered']:.1f}%" for n in lengths)
                 + " | |")
    ratios = [data["cases"][n]["profile_ms"] / data["cases"][n]["time_ms_median"] for n in lengths
              if data["cases"][n].get("time_ms_median")]
    lines.append("| profiled / timed median | " + " | ".join(f"{r:.2f}" for r in ratios) + " | |")
    longest = lengths[-1]
    top = max(data["stages"][longest].values(), key=lambda r: r.get("profile_share") or 0, default=None)
    if top is not None:
        lines += ["", f"At n={longest} the largest stage is **{top['stage']}** ({100 * top['profile_share']:.0f}%); "
                  f"its top ops: {top.get('profile_top_ops') or '-'}."]
    return lines + [""]


def _versus(series: dict, slow: str, fast: str) -> list[str]:
    a, b = series.get(slow), series.get(fast)
    if not a or not b:
        return [f"(no series {slow!r} or {fast!r} in the report)", ""]
    n = max(set(a["cases"]) & set(b["cases"]))
    ratio = a["cases"][n]["profile_ms"] / b["cases"][n]["profile_ms"]
    timed = a["cases"][n]["time_ms_median"] / b["cases"][n]["time_ms_median"]
    lines = [f"### {slow} against {fast} at n={n}", "",
             f"{slow} takes {ratio:.1f}x the profiled time of {fast} ({timed:.1f}x by the time metric's medians). "
             f"Its stages, in ms per call (what {fast}'s whole call costs: {b['cases'][n]['profile_ms']:.3g} ms):", "",
             "| stage | ms | share | FLOPs | FLOP/s | allocated |", "|---|---:|---:|---:|---:|---:|"]
    for stage, row in a["stages"][n].items():
        rate = row.get("profile_flops_per_s")
        lines.append(f"| {stage} | {row['profile_ms']:.3g} | {100 * row['profile_share']:.1f}% | "
                     f"{row.get('profile_flops') or 0:.3g} | {'-' if not rate else f'{rate / 1e9:.2f} G'} | "
                     f"{(row.get('profile_alloc_bytes') or 0) / 2**20:.0f} MiB |")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report")
    parser.add_argument("--versus", action="append", default=[], help="SLOW,FAST: two series labels to set apart")
    args = parser.parse_args(argv)
    rows = load(args.report).rows
    series = series_of(rows)
    cases = [r for r in rows if not r.get("stage")]
    lines = [f"# What {args.report} shows", "", f"{len(cases)} cases; one process; {cases[0].get('cpu_model')}, "
             f"{cases[0].get('threads')} thread(s), torch {cases[0].get('torch_version')}, commit "
             f"{cases[0].get('git_sha')}; stage time is {cases[0].get('profile_time')}, in the profiled call of "
             f"median wall time of {cases[0].get('profile_calls')}.", ""]
    for name, data in series.items():
        lines += _series_lines(name, data)
    for pair in args.versus:
        lines += _versus(series, *pair.split(","))
    sys.stdout.write("\n".join(lines))


if __name__ == "__main__":
    main()
