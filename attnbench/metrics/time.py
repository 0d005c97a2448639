"""Wall time per call: torch.utils.benchmark after a warm-up, adaptive blocks until IQR/median
< 10% (or the time budget is spent); median, IQR, and the achieved rate against the machine's
measured matmul rate. Raw samples go to the report's sidecar, where `compare` bootstraps them."""

from attnbench.metric import SAMPLES_KEY, Bootstrap, Column, Metric, Panel


def measure(ctx) -> dict:
    from attnbench.measure.timing import matmul_peak_flops_per_s, time_call

    case = ctx.case
    timing = time_call(ctx.call, ctx.device, threads=case.threads, min_time_s=ctx.options.min_time_s,
                       max_time_s=ctx.options.max_time_s)
    peak = matmul_peak_flops_per_s(case.device, case.dtype, case.threads)
    work = ctx.row.get("flops") or ctx.row.get("flops_analytic")
    achieved = None if work is None else work / (timing.median_ms / 1e3)
    return {SAMPLES_KEY: [t * 1e3 for t in timing.samples_s],
            "time_ms_median": timing.median_ms, "time_ms_iqr": timing.iqr_ms, "time_samples": len(timing.samples_s),
            "time_calls_per_sample": timing.calls_per_sample, "time_noisy": timing.noisy,
            "achieved_flops_per_s": achieved, "machine_matmul_flops_per_s": peak,
            "machine_peak_fraction": None if achieved is None else achieved / peak}


def _timed(row: dict) -> bool:
    return isinstance(row.get("time_ms_median"), int | float) and row["time_ms_median"] == row["time_ms_median"]


METRIC = Metric(
    name="time", order=90,
    columns=("time_ms_median", "time_ms_iqr", "time_samples", "time_calls_per_sample", "time_noisy",
             "achieved_flops_per_s", "machine_matmul_flops_per_s", "machine_peak_fraction"),
    measure=measure,
    help="median wall time per call and its IQR (timed last, alone)",
    compare=Bootstrap("time_ms_median", spread_column="time_ms_iqr", rel=0.05, absolute=0.01),
    table=(Column("time ms", lambda r: f"{r['time_ms_median']:.3f}" if _timed(r) else "-"),
           Column("± IQR", lambda r: f"{r['time_ms_iqr']:.3f}" + (" ~" if r.get("time_noisy") is True else "")
                  if _timed(r) else "-"),
           Column("% matmul peak", lambda r: f"{100 * r['machine_peak_fraction']:.1f}"
                  if isinstance(r.get("machine_peak_fraction"), float) and _timed(r) else "-")),
    panels=(Panel("time_ms_median", "time per call (ms)", band="time_ms_iqr"),),
)
