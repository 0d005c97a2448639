"""Time per call (attnbench.measure.timing: torch.utils.benchmark on CPU, CUDA events with a
cold L2 on a GPU), until IQR/median < 10% or the time budget is spent: median, IQR, the achieved
FLOP/s against a peak (a GPU's datasheet, or this machine's measured GEMM: peak_source), and the
achieved bandwidth against the method's bytes_moved_analytic. On a GPU the SM clock at the start
and end and NVML's throttle reasons are recorded: a clock that moved more than 5%, or a thermal
or power throttle, makes the timing noisy. Raw samples go to the report's sidecar, where
`compare` bootstraps them.

With `processes` > 1 the engine times each case in that many separate processes and `combine`
merges them: the median is the median of the per-process medians, and the spread between
processes is its own set of columns (one process cannot see it: a whole process may run 1.5x
slower than the next with a quiet IQR).
"""

import statistics

from attnbench.metric import SAMPLES_KEY, Bootstrap, Column, Metric, Panel, number, sample_groups

NOISY_PROCESS_SPREAD = 1.10  # slowest/fastest process median above this: the timing is noisy
# A side timed in one process: compare counts a time change only beyond this relative change.
# Measured on the 2-core CI machine (scenarios/timing_aa.py, reports/measured/timing-aa-*.md):
# one process of a run against one of the next, same case, differed by more than 1.58x in 1% of
# 2000 pairs (at most 2.22x); 1.60x is that percentile rounded up.
ONE_PROCESS_THRESHOLD = 0.6
CLOCK_MOVED = 0.05  # SM clock at the end vs the start: beyond this the GPU changed speed mid-timing
SLOWED = {"sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake"}  # NVML's heat/power reasons


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q3 - q1


def time_columns(groups: list[list[float]], calls_per_sample: int, row: dict) -> dict:
    """Every time column from samples in ms, one list per process; `row` gives the work (flops or
    flops_analytic), bytes_moved_analytic and machine_peak_flops_per_s."""
    from attnbench.measure.timing import MIN_QUIET_SAMPLES, NOISY_IQR_FRACTION

    medians = [statistics.median(g) for g in groups]
    median = statistics.median(medians)
    pooled = [x for g in groups for x in g]  # the IQR of every sample: within and between processes
    noisy_process = any(len(g) < MIN_QUIET_SAMPLES or _iqr(g) > NOISY_IQR_FRACTION * m for g, m in zip(groups, medians))
    spread = max(medians) / min(medians)
    work, moved, peak = _work(row), number(row, "bytes_moved_analytic"), number(row, "machine_peak_flops_per_s")
    achieved = None if work is None else work / (median / 1e3)
    return {"time_ms_median": median, "time_ms_iqr": _iqr(pooled), "time_samples": len(pooled),
            "time_calls_per_sample": calls_per_sample, "time_processes": len(groups),
            "time_ms_process_min": min(medians), "time_ms_process_max": max(medians), "time_process_spread": spread,
            "time_noisy": noisy_process or spread > NOISY_PROCESS_SPREAD or clock_noisy(row),
            "achieved_flops_per_s": achieved,
            "machine_peak_fraction": None if achieved is None or not peak else achieved / peak,
            "achieved_bandwidth_bytes_per_s": None if moved is None else moved / (median / 1e3)}


def clock_noisy(row: dict) -> bool:
    """The GPU's SM clock moved more than 5% during the timing, or heat or power held it down."""
    start, end = number(row, "gpu_sm_clock_mhz_start"), number(row, "gpu_sm_clock_mhz_end")
    moved = bool(start and end and abs(end - start) > CLOCK_MOVED * start)
    return moved or bool(set(str(row.get("gpu_throttle_reasons") or "").split(",")) & SLOWED)


def _work(row: dict) -> float | None:
    return number(row, "flops") or number(row, "flops_analytic")


def _gpu_columns(start: dict, end: dict) -> dict:
    reasons = [r for state in (start, end) for r in str(state["throttle_reasons"]).split(",") if r]
    unavailable = "unavailable" in reasons
    return {"gpu_sm_clock_mhz_start": start["sm_clock_mhz"], "gpu_sm_clock_mhz_end": end["sm_clock_mhz"],
            "gpu_throttle_reasons": "unavailable" if unavailable else ",".join(dict.fromkeys(reasons))}


def measure(ctx) -> dict:
    from attnbench.measure.timing import time_call
    from attnbench.peaks import machine_peak

    case, options, cuda = ctx.case, ctx.options, ctx.device.type == "cuda"
    if cuda:
        from attnbench.env import gpu_clock_state

        start = gpu_clock_state(case.device)
    timing = time_call(ctx.call, ctx.device, threads=case.threads, min_time_s=options.min_time_s,
                       max_time_s=options.max_time_s, l2=options.l2, cuda_graphs=options.cuda_graphs)
    extra = {"time_l2": options.l2 if cuda else "", "time_cuda_graphs": options.cuda_graphs if cuda else "",
             **(_gpu_columns(start, gpu_clock_state(case.device)) if cuda else {})}
    # Later processes only add samples: the machine's rate is measured once, by the first.
    peak, source = machine_peak(case.device, case.dtype, case.threads) if options.process_index == 0 else (None, "")
    extra.update(machine_peak_flops_per_s=peak, peak_source=source)
    groups = [[t * 1e3 for t in timing.samples_s]]
    return {SAMPLES_KEY: groups, **extra, **time_columns(groups, timing.calls_per_sample, {**ctx.row, **extra})}


def combine(first: dict, later: list[dict]) -> dict:
    """The row of a case timed in several processes: `first` (the process that ran every pass)
    with its time columns recomputed from every process's samples. A later process that failed
    is left out of the time and named in status_detail; case_seconds adds up every process; a
    process whose GPU clock moved makes the whole timing noisy."""
    if first.get("status") != "ok":
        return first
    groups, failed = sample_groups(first.get(SAMPLES_KEY)), []
    for index, row in enumerate(later, 2):
        if row.get("status") == "ok" and row.get(SAMPLES_KEY):
            groups += sample_groups(row[SAMPLES_KEY])
        else:
            failed.append(f"process {index}: {row.get('status')} ({row.get('status_detail') or ''})")
    combined = {**first, SAMPLES_KEY: groups, **time_columns(groups, first["time_calls_per_sample"], first)}
    combined["time_noisy"] = combined["time_noisy"] or any(clock_noisy(r) for r in later if r.get("status") == "ok")
    combined["case_seconds"] = sum(r.get("case_seconds") or 0 for r in [first, *later])
    if failed:
        combined["status_detail"] = "time left out of " + "; ".join(failed)
    return combined


def _timed(row: dict) -> bool:
    return isinstance(row.get("time_ms_median"), int | float) and row["time_ms_median"] == row["time_ms_median"]


def _spread_cell(row: dict) -> str:
    processes, spread = row.get("time_processes"), row.get("time_process_spread")
    if not _timed(row) or not isinstance(processes, int | float):
        return "-"
    return "1" if processes < 2 else f"{processes:.0f}: {100 * (spread - 1):.0f}%"


def _peak_header(rows: list[dict]) -> str:
    sources = {r.get("peak_source") for r in rows if r.get("peak_source")}
    return {frozenset({"spec"}): "% spec peak", frozenset({"measured"}): "% measured GEMM"}.get(
        frozenset(sources), "% peak (spec or GEMM)")


METRIC = Metric(
    name="time", order=90,
    columns=("time_ms_median", "time_ms_iqr", "time_samples", "time_calls_per_sample", "time_noisy",
             "time_processes", "time_ms_process_min", "time_ms_process_max", "time_process_spread",
             "time_l2", "time_cuda_graphs", "gpu_sm_clock_mhz_start", "gpu_sm_clock_mhz_end", "gpu_throttle_reasons",
             "achieved_flops_per_s", "machine_peak_flops_per_s", "peak_source", "machine_peak_fraction",
             "achieved_bandwidth_bytes_per_s"),
    measure=measure,
    help="median time per call and its IQR (timed last, alone; CUDA events with a cold L2 on a GPU; with "
         "--processes N, in N processes)",
    compare=Bootstrap("time_ms_median", spread_column="time_ms_iqr", rel=0.05, absolute=0.01,
                      one_process_rel=ONE_PROCESS_THRESHOLD),
    table=(Column("time ms", lambda r: f"{r['time_ms_median']:.3f}" if _timed(r) else "-"),
           Column("± IQR", lambda r: f"{r['time_ms_iqr']:.3f}" + (" ~" if r.get("time_noisy") is True else "")
                  if _timed(r) else "-"),
           Column("processes: spread", _spread_cell),
           Column(_peak_header, lambda r: f"{100 * r['machine_peak_fraction']:.1f}"
                  if isinstance(r.get("machine_peak_fraction"), float) and _timed(r) else "-")),
    panels=(Panel("time_ms_median", "time per call (ms)", band="time_ms_iqr"),),
)
