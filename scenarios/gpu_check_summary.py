"""The headline figures of a GPU check (scenarios/gpu_check.sh) as one markdown page.

Usage: python scenarios/gpu_check_summary.py OUTDIR
Reads the reports gpu_check.sh wrote into OUTDIR and writes OUTDIR/summary.md (printed too):
the 16k comparison, peak memory at 8k, the oom rows, prefill and decode, the GPU's timing A/A,
and each step's time against its estimate. A report a step did not write is said, not skipped.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(row: dict, column: str, scale: float = 1.0, spec: str = ".3g") -> str:
    try:
        return format(float(row[column]) / scale, spec)
    except (KeyError, TypeError, ValueError):
        return "-"


def table(title: str, path: Path, columns: list[tuple[str, callable]]) -> list[str]:
    found = rows(path)
    if not found:
        return [f"## {title}", "", f"no report: {path.name} was not written (see the log)", ""]
    lines = [f"## {title}", "", "| " + " | ".join(name for name, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell(r)) for _, cell in columns) + " |" for r in found]
    return [*lines, ""]


def status(row: dict) -> str:
    return row["status"] if row.get("status") == "ok" else f"{row.get('status')}: {row.get('status_detail', '')[:80]}"


def summary(out: Path) -> str:
    timed = [("method", lambda r: r["method"]), ("mode", lambda r: r.get("mode", "")),
             ("n", lambda r: r["seq_len"]), ("time ms", lambda r: number(r, "time_ms_median", spec=".4g")),
             ("bwd alone ms", lambda r: number(r, "time_backward_ms_median", spec=".4g")),
             ("TFLOP/s", lambda r: number(r, "achieved_flops_per_s", 1e12)),
             ("% peak", lambda r: number(r, "machine_peak_fraction", 0.01, ".1f")),
             ("peak MiB", lambda r: number(r, "peak_mem_bytes", 2**20, ".1f")), ("status", status)]
    served = [("method", lambda r: r["method"]), ("n", lambda r: r["seq_len"]),
              ("q", lambda r: r.get("q_seq_len") or r["seq_len"]),
              ("time ms", lambda r: number(r, "time_ms_median", spec=".4g")),
              ("timed as", lambda r: r.get("time_method", "")),
              ("GB/s", lambda r: number(r, "achieved_bandwidth_bytes_per_s", 1e9)),
              ("% peak bw", lambda r: number(r, "bandwidth_peak_fraction", 0.01, ".1f")), ("status", status)]
    memory = [("method", lambda r: r["method"]), ("dtype", lambda r: r.get("dtype", "")),
              ("n", lambda r: r["seq_len"]), ("peak MiB", lambda r: number(r, "peak_mem_bytes", 2**20, ".1f")),
              ("time ms", lambda r: number(r, "time_ms_median", spec=".4g")), ("status", status)]
    lines = [f"# GPU check: {out.name}", ""]
    lines += table("16k, bf16: SDPA's choice, flash, FlexAttention, Skyformer", out / "headline.csv", timed)
    lines += table("Peak device memory at 8k", out / "memory.csv", memory)
    lines += table("Under a 256 MB device-memory cap (every row must be oom)", out / "oom.csv", memory)
    lines += table("Prefill (causal, 32 heads over 8 kv heads of 128)", out / "prefill.csv", served)
    lines += table("Decode (one query against the cache)", out / "decode.csv", served)
    every = rows(out / "every-method.csv")
    if every:
        bad = [f"{r['method']} ({status(r)})" for r in every if r.get("status") not in ("ok", "unsupported")]
        ok = sum(r.get("status") == "ok" for r in every)
        lines += ["## Every method at 4k", "", f"{len(every)} rows, {ok} ok; neither ok nor unsupported: "
                  f"{', '.join(bad) or 'none'}", ""]
    aa = out / "timing-aa.md"
    lines += ["## Timing A/A", "", aa.read_text().split("\n", 2)[-1].strip() if aa.is_file() else "not run", ""]
    steps = out / "steps.tsv"
    if steps.is_file():
        lines += ["## Steps", "", "| step | cases | estimate s | took s | exit |", "|---|---|---|---|---|"]
        for line in steps.read_text().splitlines():
            number_, name, cases, estimate, took, code = line.split("\t")
            lines.append(f"| {number_} {name} | {cases} | {estimate} | {took} | {code} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python scenarios/gpu_check_summary.py OUTDIR (a folder gpu_check.sh wrote)")
    out = Path(sys.argv[1])
    text = summary(out)
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
