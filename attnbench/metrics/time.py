"""Time per call (attnbench.measure.timing: torch.utils.benchmark on CPU, CUDA events with a
cold L2 on a GPU), until IQR/median < 10% or the time budget is spent: the case's time, its IQR,
the achieved FLOP/s against a peak (a GPU's datasheet, or this machine's measured GEMM:
peak_source), and the achieved bandwidth against the method's bytes_moved_analytic. On a GPU the
SM clock after the warm-up and while the last timed calls run, and the share of the timed window
NVML counted the clocks held down by power or heat, are recorded: a clock that moved more than
5%, or a throttle over 1% of the window, makes the timing noisy. The raw samples are the row's
timing record (`Row.samples`), which the report keeps in its sidecar and `compare` bootstraps.

Time is the one metric measured in every process of a case (`per_process`): with
`--processes N` the engine times each case in N separate processes and `combine` merges them.
The case's time is the geometric mean of the per-process medians (attnbench.measure.statistics,
the statistic the row, summary and compare share), and the spread between processes is its own
set of columns (one process cannot see it: a whole process may run 1.5x slower than the next
with a quiet IQR).
"""

from attnbench.measure.statistics import NOISY_IQR_FRACTION
from attnbench.metrics import Metric
from attnbench.metrics.display import Column, Panel, fmt_number
from attnbench.metrics.policies import Bootstrap, numeric

NOISY_PROCESS_SPREAD = 1.10  # slowest/fastest process median above this: the timing is noisy
# A side timed in one process: compare counts a time change only beyond this relative change.
# Measured on the 2-core CI machine (scenarios/timing_aa.py, reports/measured/timing-aa-*.md):
# one process of a run against one of the next, same case, differed by more than 1.58x in 1% of
# 2000 pairs (at most 2.22x); 1.60x is that percentile rounded up.
ONE_PROCESS_THRESHOLD = 0.6
CLOCK_MOVED = 0.05  # SM clock at the end vs the start: beyond this the GPU changed speed mid-timing
THROTTLED = 0.01  # clocks held down by power or heat for more of the timed window than this: noisy


def time_columns(groups: list[list[float]], calls_per_sample: int, row: dict) -> dict:
    """Every time column from samples in ms, one list per process; `row` gives the work (flops or
    flops_analytic), bytes_moved_analytic and machine_peak_flops_per_s."""
    import statistics

    from attnbench.measure.statistics import iqr, level, quiet

    medians = [statistics.median(g) for g in groups]
    time_ms = level(groups)
    pooled = [x for g in groups for x in g]  # the IQR of every sample: within and between processes
    spread = max(medians) / min(medians)
    work, moved, peak = _work(row), numeric(row, "bytes_moved_analytic"), numeric(row, "machine_peak_flops_per_s")
    achieved = None if work is None else work / (time_ms / 1e3)
    bandwidth = None if moved is None else moved / (time_ms / 1e3)
    bandwidth_peak = numeric(row, "peak_bandwidth_bytes_per_s")
    fraction = None if achieved is None or not peak else achieved / peak
    return {"time_ms_median": time_ms, "time_ms_iqr": iqr(pooled), "time_samples": len(pooled),
            "time_calls_per_sample": calls_per_sample, "time_processes": len(groups),
            "time_ms_process_min": min(medians), "time_ms_process_max": max(medians), "time_process_spread": spread,
            "time_noisy": not all(quiet(g) for g in groups) or spread > NOISY_PROCESS_SPREAD or clock_noisy(row),
            "achieved_flops_per_s": achieved,
            "machine_peak_fraction": fraction, "machine_peak_flag": peak_flag(fraction, row),
            "achieved_bandwidth_bytes_per_s": bandwidth,
            "bandwidth_peak_fraction": None if bandwidth is None or not bandwidth_peak else bandwidth / bandwidth_peak}


def peak_flag(fraction: float | None, row: dict) -> str:
    """Why machine_peak_fraction is not a plain number, or '': above 1 (more than the peak: the
    peak is no peak for this case, or the time is wrong), or, against a measured yardstick, rounds
    (or processes) whose fractions differ by more than a noisy timing's IQR (10% of its median)."""
    if fraction is None:
        return ""
    spread = numeric(row, "machine_peak_spread")
    reasons = ([f"above the {'datasheet peak' if row.get('peak_source') == 'spec' else 'measured GEMM'}"]
               if fraction > 1 else [])
    if spread is not None and spread > NOISY_IQR_FRACTION:
        reasons.append(f"the fraction moved between rounds of the case (IQR {100 * spread:.0f}% of its median)")
    return "; ".join(reasons)


def clock_noisy(row: dict) -> bool:
    """The GPU's SM clock moved more than 5% during the timing, or the power cap or heat held its
    clocks down for more than 1% of it."""
    start, end = numeric(row, "gpu_sm_clock_mhz_start"), numeric(row, "gpu_sm_clock_mhz_end")
    moved = bool(start and end and abs(end - start) > CLOCK_MOVED * start)
    throttled = (numeric(row, f"gpu_{cause}_throttled_fraction") for cause in ("power", "thermal"))
    return moved or any(fraction is not None and fraction > THROTTLED for fraction in throttled)


def _work(row: dict) -> float | None:
    return numeric(row, "flops") or numeric(row, "flops_analytic")


def gpu_columns(readings: list[tuple[float, dict]]) -> dict:
    """The GPU's state over the timed window from (host time s, gpu_monitor reading) pairs, the
    first read after the warm-up and the last while the final batch ran: the SM clock at both ends,
    and the fraction of the window its clocks were held down by the power cap and by heat."""
    (t0, first), (t1, last) = readings[0], readings[-1]
    columns = {"gpu_sm_clock_mhz_start": first["sm_clock_mhz"], "gpu_sm_clock_mhz_end": last["sm_clock_mhz"]}
    for cause in ("power", "thermal"):
        begin, end = first[f"{cause}_throttle_ns"], last[f"{cause}_throttle_ns"]
        counted = isinstance(begin, int) and isinstance(end, int) and t1 > t0
        columns[f"gpu_{cause}_throttled_fraction"] = (end - begin) / 1e9 / (t1 - t0) if counted else "unavailable"
    return columns


def measure(ctx) -> dict:
    import time

    from attnbench.measure.machine.peaks import beside_yardstick, machine_bandwidth
    from attnbench.measure.timing import time_call

    case, options, cuda = ctx.case, ctx.options, ctx.device.type == "cuda"
    readings: list[tuple[float, dict]] = []

    def timed(share: float, first: bool, observe=None):  # `share` of the time budget; `first` warms up
        return time_call(ctx.call, ctx.device, threads=case.threads, min_time_s=options.min_time_s * share,
                         max_time_s=options.max_time_s * share, l2=options.l2, cuda_graphs=options.cuda_graphs,
                         warmup_s=options.warmup_s, warm=first, observe=observe, short_calls=options.short_calls)

    def timed_here(share: float, first: bool):
        if not cuda:
            return timed(share, first)
        from attnbench.measure.machine.env import gpu_monitor

        with gpu_monitor(case.device) as read:
            return timed(share, first, lambda: readings.append((time.perf_counter(), read())))
    # every process measures the yardstick beside its own timing: combine merges them as it merges times
    timing, extra = beside_yardstick(case.device, case.dtype, case.threads, timed_here, options.min_time_s)
    # a batch of short calls is flushed before none of them: the L2 is as the previous call left it
    l2 = options.l2 if timing.calls_per_sample == 1 else "warm"
    extra.update(time_l2=l2 if cuda else "", time_cuda_graphs=options.cuda_graphs if cuda else "",
                 time_method=timing.method, peak_bandwidth_bytes_per_s=machine_bandwidth(case.device),
                 **(gpu_columns(readings) if cuda else {}))
    if ctx.backward is not None:  # the backward pass alone, beside forward + backward
        from attnbench.measure.statistics import iqr

        ctx.fresh_state()
        alone = time_call(ctx.backward(), ctx.device, threads=case.threads, min_time_s=options.min_time_s,
                          max_time_s=options.max_time_s, l2=options.l2, cuda_graphs=False, warmup_s=options.warmup_s)
        extra.update(time_backward_ms_median=alone.median_ms, time_backward_ms_iqr=iqr(alone.samples_ms))
    ctx.row.samples = [timing.samples_ms]
    return {**extra, **time_columns(ctx.row.samples, timing.calls_per_sample, {**ctx.row, **extra})}


def combine(first, later: list):
    """The row of a case timed in several processes: `first` (the process that ran every pass)
    with its time columns recomputed from every process's samples. A later process that failed
    is left out of the time and named in status_detail; case_seconds adds up every process; a
    process whose GPU clock moved makes the whole timing noisy."""
    if first.get("status") != "ok":
        return first
    groups, failed = list(first.samples or []), []
    for index, row in enumerate(later, 2):
        if row.get("status") == "ok" and row.samples:
            groups += row.samples
        else:
            failed.append(f"process {index}: {row.get('status')} ({row.get('status_detail') or ''})")
    combined = type(first)({**first, **_yardstick([first, *later])}, samples=groups,
                           stages=getattr(first, "stages", None))
    combined.update(time_columns(groups, first["time_calls_per_sample"], combined))
    backward = [r for r in [first, *later] if r.get("status") == "ok" and numeric(r, "time_backward_ms_median")]
    if backward:  # kept as each process's median and IQR: the same statistic as time_ms_median over them
        from attnbench.measure.statistics import level

        combined["time_backward_ms_median"] = level([[r["time_backward_ms_median"]] for r in backward])
        combined["time_backward_ms_iqr"] = max(r["time_backward_ms_iqr"] for r in backward)
    combined["time_noisy"] = combined["time_noisy"] or any(clock_noisy(r) for r in later if r.get("status") == "ok")
    combined["case_seconds"] = sum(r.get("case_seconds") or 0 for r in [first, *later])
    if failed:
        combined["status_detail"] = "time left out of " + "; ".join(failed)
    return combined


def _yardstick(rows: list) -> dict:
    """The measured GEMM yardstick of several processes: the geometric mean of theirs (the
    statistic of the time it divides); its spread the widest of theirs, or how far the processes'
    own fractions (1 / (their time x their peak), up to the FLOPs) are apart."""
    measured = [(numeric(r, "machine_peak_flops_per_s"), numeric(r, "machine_peak_spread"),
                 numeric(r, "time_ms_median")) for r in rows
                if r.get("status") == "ok" and r.get("peak_source") == "measured"]
    measured = [(peak, spread or 0.0, time_ms) for peak, spread, time_ms in measured if peak and time_ms]
    if len(measured) < 2:
        return {}
    from attnbench.measure.statistics import level

    fractions = [1 / (peak * time_ms) for peak, _, time_ms in measured]
    return {"machine_peak_flops_per_s": level([[peak] for peak, _, _ in measured]),
            "machine_peak_spread": max(max(fractions) / min(fractions) - 1, *(spread for _, spread, _ in measured))}


def _timed(row: dict) -> bool:
    return numeric(row, "time_ms_median") is not None


def _scaled(row: dict, column: str, unit: float) -> float | None:
    value = numeric(row, column)
    return None if value is None or not _timed(row) else value / unit


def _iqr_cell(row: dict) -> str:
    if not _timed(row):
        return "-"
    if (numeric(row, "time_samples") or 0) < 2:
        return "1 sample ~"  # an IQR of one sample is 0: no figure at all
    return f"{row['time_ms_iqr']:.3f}" + (" ~" if row.get("time_noisy") is True else "")


def _noise_legend(rows: list[dict]) -> str | None:
    if not any(r.get("time_noisy") is True and _timed(r) for r in rows):
        return None
    single = any(_timed(r) and (numeric(r, "time_samples") or 0) < 2 for r in rows)
    return ("~ after the IQR: a noisy time (fewer than 5 samples, IQR over 10% of the median, processes over 10% "
            "apart, or a GPU clock that moved); rerun it on a quiet machine, or with --min-time"
            + ("; '1 sample': one call outlasted the time budget, so there is no spread to show" if single else ""))


def _several_processes(rows: list[dict]) -> bool:
    return any((numeric(r, "time_processes") or 0) > 1 and _timed(r) for r in rows)


def _spread_cell(row: dict) -> str:
    processes, spread = numeric(row, "time_processes"), numeric(row, "time_process_spread")
    if not _timed(row) or processes is None or spread is None:
        return "-"
    return f"{100 * (spread - 1):.0f}% of {processes:.0f}"


def _peak_header(rows: list[dict]) -> str:
    sources = {r.get("peak_source") for r in rows if r.get("peak_source")}
    return {frozenset({"spec"}): "% spec peak", frozenset({"measured"}): "% measured GEMM"}.get(
        frozenset(sources), "% peak (spec or GEMM)")


def _peak_cell(row: dict) -> str:
    fraction = numeric(row, "machine_peak_fraction")
    if fraction is None or not _timed(row):
        return "-"
    return f"{100 * fraction:.1f}" + (" !" if row.get("machine_peak_flag") else "")


def _peak_legend(rows: list[dict]) -> str | None:
    sources = {r.get("peak_source") for r in rows if _timed(r) and numeric(r, "machine_peak_fraction") is not None}
    if not sources:
        return None
    basis = {"spec": "the GPU's datasheet peak for the dtype",
             "measured": "this machine's dense GEMM rate, measured between rounds of each case's timing, "
                         "round by round"}
    line = "% peak: achieved FLOP/s over " + " or ".join(basis[s] for s in sorted(sources) if s in basis)
    if any(r.get("machine_peak_flag") for r in rows if _timed(r)):
        line += ("; ! marks a fraction above 100% or one that moved over 10% between rounds of the case "
                 "(machine_peak_flag says which)")
    return line


METRIC = Metric(
    column_help={
        "time_ms_median": "the case's time per call in ms: the median of each process's samples, geometric mean "
                          "over processes",
        "time_ms_iqr": "interquartile range of every sample (within and between processes), ms",
        "time_backward_ms_median": "backward and train modes: the backward pass alone (one forward kept, its graph "
                                   "retained, a fixed upstream gradient), ms; geometric mean of the processes' medians",
        "time_backward_ms_iqr": "its interquartile range, ms (the widest process's)",
        "time_samples": "samples taken, over every process",
        "time_calls_per_sample": "calls one sample times (CPU: the timer's block; CUDA: a batch of short calls)",
        "time_method": "how the time was taken: timer (CPU, torch.utils.benchmark), events (CUDA events around "
                       "every call), graph (--cuda-graphs: a graph's replays), graph-batch or events-batch (a call "
                       "under 100 us: a CUDA graph of many calls, or many calls between one pair of events)",
        "time_noisy": "fewer than 5 samples, IQR/median above 10% in a process, processes more than 10% apart, "
                      "or a GPU clock that moved or was throttled",
        "time_processes": "separate processes the case was timed in",
        "time_ms_process_min": "the fastest process's median, ms",
        "time_ms_process_max": "the slowest process's median, ms",
        "time_process_spread": "slowest / fastest process median",
        "time_l2": "CUDA: cold (L2 flushed before every timed call) or warm (not flushed; always for a batch)",
        "time_cuda_graphs": "CUDA: the replays of a captured CUDA graph were timed",
        "gpu_sm_clock_mhz_start": "CUDA: the SM clock once the warm-up was done (NVML)",
        "gpu_sm_clock_mhz_end": "CUDA: the SM clock while the last timed calls ran (NVML)",
        "gpu_power_throttled_fraction": "CUDA: fraction of the timed window the power cap held the clocks down "
                                        "(NVML's violation counter, differenced)",
        "gpu_thermal_throttled_fraction": "CUDA: fraction of the timed window heat held the clocks down (NVML)",
        "achieved_flops_per_s": "flops (or flops_analytic) / time",
        "machine_peak_flops_per_s": "the peak it is a fraction of: a GPU's datasheet, or this machine's dense GEMM "
                                    "rate measured in bursts between rounds of the case's timing, in its process: the "
                                    "rate that makes achieved / peak the median over rounds of each round's speed over "
                                    "its bursts' rate (geometric mean over processes)",
        "machine_peak_spread": "measured peak: how far the rounds' fractions differ (their IQR / median; one round: "
                               "its two bursts' ratio - 1; several processes: the widest, or how far their peaks are "
                               "apart)",
        "machine_peak_flag": "why machine_peak_fraction is not a plain number: above the peak, or a fraction that "
                             "moved more than 10% between the case's rounds; empty when neither",
        "peak_source": "spec (datasheet) or measured (GEMM)",
        "machine_peak_fraction": "achieved_flops_per_s / machine_peak_flops_per_s",
        "achieved_bandwidth_bytes_per_s": "bytes_moved_analytic / time",
        "peak_bandwidth_bytes_per_s": "CUDA: the GPU's datasheet memory bandwidth (empty on a CPU or an unknown GPU)",
        "bandwidth_peak_fraction": "achieved_bandwidth_bytes_per_s / peak_bandwidth_bytes_per_s"},
    name="time", order=90,
    columns=("time_ms_median", "time_ms_iqr", "time_backward_ms_median", "time_backward_ms_iqr", "time_samples",
             "time_calls_per_sample", "time_noisy",
             "time_processes", "time_ms_process_min", "time_ms_process_max", "time_process_spread",
             "time_method", "time_l2", "time_cuda_graphs", "gpu_sm_clock_mhz_start", "gpu_sm_clock_mhz_end",
             "gpu_power_throttled_fraction", "gpu_thermal_throttled_fraction",
             "achieved_flops_per_s", "machine_peak_flops_per_s", "peak_source", "machine_peak_spread",
             "machine_peak_fraction", "machine_peak_flag",
             "achieved_bandwidth_bytes_per_s", "peak_bandwidth_bytes_per_s", "bandwidth_peak_fraction"),
    types={"time_samples": int, "time_calls_per_sample": int, "time_noisy": bool, "time_processes": int,
           "time_method": str, "time_l2": str, "time_cuda_graphs": bool, "gpu_sm_clock_mhz_start": int,
           "gpu_sm_clock_mhz_end": int,
           "peak_source": str, "machine_peak_flag": str},
    measure=measure, deterministic=False, per_process=True, combine=combine,
    help="median time per call and its IQR (timed last, alone; CUDA events with a cold L2 on a GPU; with "
         "--processes N, in N processes)",
    compare=Bootstrap("time_ms_median", spread_column="time_ms_iqr", rel=0.05, absolute=0.01,
                      one_process_rel=ONE_PROCESS_THRESHOLD, measured_on="on a 2-core CPU"),
    table=(Column("time ms", sort="time_ms_median", cell=lambda r: f"{r['time_ms_median']:.3f}" if _timed(r) else "-",
                  legend="time ms: the median time per call (several processes: the geometric mean of their medians)"),
           Column("± IQR", sort="time_ms_iqr", cell=_iqr_cell, legend=_noise_legend),
           Column("bwd ms", sort="time_backward_ms_median",
                  cell=lambda r: fmt_number(r.get("time_backward_ms_median"), ".3f"),
                  needs="time_backward_ms_median"),
           Column("process spread", sort="time_process_spread", cell=_spread_cell, needs=_several_processes,
                  legend="process spread: how much slower the slowest process's median is than the fastest's, "
                         "of N processes"),
           Column("TFLOP/s", sort="achieved_flops_per_s",
                  cell=lambda r: fmt_number(_scaled(r, "achieved_flops_per_s", 1e12), ".3g"),
                  legend="TFLOP/s: counted FLOPs (the formula's where nothing could be counted) / time"),
           Column(_peak_header, sort="machine_peak_fraction", cell=_peak_cell, legend=_peak_legend),
           Column("GB/s (analytic)", sort="achieved_bandwidth_bytes_per_s",
                  cell=lambda r: fmt_number(_scaled(r, "achieved_bandwidth_bytes_per_s", 1e9), ".3g"),
                  needs="achieved_bandwidth_bytes_per_s",
                  legend="GB/s (analytic): the bytes the method's formula says it must move (q, k, v, output and "
                         "what it materializes) / time, not a measured traffic"),
           Column("% peak bw", sort="bandwidth_peak_fraction",
                  cell=lambda r: fmt_number(_scaled(r, "bandwidth_peak_fraction", 0.01), ".1f"),
                  needs="bandwidth_peak_fraction")),
    panels=(Panel("time_ms_median", "time per call (ms)", band="time_ms_iqr"),),
)
