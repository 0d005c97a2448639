"""A profile report's views (attnbench profile): the stage table on screen, and the figure of each
method's stage shares against n (stacked) beside each stage's FLOP rate."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import pandas as pd  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from attnbench.metrics.display import fmt_bytes, fmt_count, fmt_number  # noqa: E402
from attnbench.results.schema import Labeller, text  # noqa: E402

OTHER = "other"  # attnbench.measure.stages.OTHER (views import no torch)


def is_stage(frame: pd.DataFrame) -> pd.Series:
    """Which rows of a report are a profile's stage rows (the others are whole cases)."""
    if "stage" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["stage"].notna() & frame["stage"].astype(str).ne("")


def _stage_cells(row: dict) -> list[str]:
    flops = row.get("profile_flops")
    return [fmt_number(row.get("profile_ms"), ".3g"), f"{fmt_number(100 * (row.get('profile_share') or 0), '.1f')}%",
            fmt_count(flops) if flops is not None else "-", fmt_count(row.get("profile_flops_per_s")),
            fmt_bytes(row.get("profile_alloc_bytes")), escape(str(row.get("profile_top_ops") or ""))]


def stages_table(case_rows: list, stage_rows: list, title: str = "attnbench profile") -> Table:
    """Per profiled case its stages in the order they ran, then 'other' and the profiled call,
    with the time metric's median beside the profiled total where it was timed."""
    import dataclasses

    label = Labeller(case_rows)
    by_case: dict = {}
    for row in stage_rows:
        by_case.setdefault(dataclasses.replace(row.case, stage=""), []).append(row)
    clocks = {text(row.get("profile_time")) for row in stage_rows} - {""}
    calls = {text(row.get("profile_calls")) for row in case_rows} - {""}
    table = Table(title=title, title_justify="left", caption_justify="left", caption=(
        f"ms: {' or '.join(sorted(clocks)) or 'time'} in the profiled call of median wall time (of "
        f"{'/'.join(sorted(calls)) or 'the'} calls); a stage's own time leaves its nested stages out; FLOP/s: "
        "the stage's FLOPs over its time; allocated: bytes asked of the allocator in that call; other: what ran "
        "outside every stage"))
    for header in ("case", "stage", "ms", "share", "FLOPs", "FLOP/s", "allocated", "top ops"):
        table.add_column(header, justify="left" if header in ("case", "stage", "top ops") else "right")
    for row in case_rows:
        stages = by_case.get(row.case, [])
        if not stages:
            continue
        for index, stage in enumerate(stages):
            table.add_row(escape(label(row)) if index == 0 else "", escape(str(stage["stage"])), *_stage_cells(stage))
        timed = row.get("time_ms_median")
        versus = f"; timed median {fmt_number(timed, '.3g')} ms" if timed else ""
        table.add_row("", f"profiled call ({fmt_number(100 * (row.get('profile_covered') or 0), '.0f')}% in "
                          f"stages{versus})", *_stage_cells(row), end_section=True)
    return table


def stage_figure(frame: pd.DataFrame, title: str = ""):
    """Per method (and parameter set): the stages' shares of the profiled call against n, stacked,
    beside each stage's FLOP rate against n; None when the report has no stage rows."""
    import matplotlib.pyplot as plt

    if not is_stage(frame).any():
        return None
    stages = frame[is_stage(frame) & frame["status"].eq("ok")].copy()
    label = Labeller(stages.to_dict("records"), with_length=False)
    stages["series"] = [label({**row, "stage": ""}) for row in stages.to_dict("records")]
    series = list(dict.fromkeys(stages["series"]))
    fig, axes = plt.subplots(len(series), 2, figsize=(13, 3.2 * len(series) + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": (1.25, 1)})
    for (share_ax, rate_ax), name in zip(axes, series):
        own = stages[stages["series"] == name]
        order = [s for s in dict.fromkeys(own["stage"]) if s != OTHER] + [OTHER]
        shares = own.pivot_table(index="seq_len", columns="stage", values="profile_share", aggfunc="mean")
        shares = shares.reindex(columns=[s for s in order if s in shares]).fillna(0.0)
        positions = range(len(shares.index))
        bottom = [0.0] * len(shares.index)
        for i, stage in enumerate(shares.columns):
            color = "lightgrey" if stage == OTHER else f"C{i % 10}"
            share_ax.bar(positions, shares[stage], bottom=bottom, color=color, label=stage, width=0.7)
            bottom = [b + s for b, s in zip(bottom, shares[stage])]
        share_ax.set_xticks(list(positions), [_length(n) for n in shares.index])
        share_ax.set(title=f"{name}: share of the call", xlabel="sequence length n", ylabel="share", ylim=(0, 1.05))
        share_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        rates = own.pivot_table(index="seq_len", columns="stage", values="profile_flops_per_s", aggfunc="mean")
        for i, stage in enumerate(shares.columns):
            if stage in rates and rates[stage].notna().any() and stage != OTHER:
                rate_ax.plot(rates.index, rates[stage] / 1e9, marker="o", color=f"C{i % 10}", label=stage)
        rate_ax.set(title=f"{name}: FLOP rate per stage", xlabel="sequence length n", ylabel="GFLOP/s")
        rate_ax.set_xscale("log", base=2)
        rate_ax.set_xticks(list(shares.index), [_length(n) for n in shares.index])
        rate_ax.minorticks_off()
        if rate_ax.lines:
            rate_ax.set_yscale("log")
            rate_ax.legend(fontsize=7)
        else:
            rate_ax.text(0.5, 0.5, "no stage does counted FLOPs", ha="center", transform=rate_ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the title above the panels
    return fig


def _length(n) -> str:
    n = int(n)
    return f"{n // 1024}k" if n % 1024 == 0 and n >= 1024 else str(n)
