"""Efficiency curves from a report: time, peak memory and FLOPs against sequence length.

Log-log axes, one line per method and parameter set, the IQR as a band around the median time,
and O(n) / O(n^2) guides. Rows that did not finish ('oom', 'error', ...) are left out, so a
line stops where its method stopped fitting.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (("time_ms_median", "time per call (ms)"), ("peak_mem_bytes", "peak memory (bytes)"),
          ("flops", "FLOPs (multiply-add = 2)"))
SERIES_KEYS = ("method", "mode", "dtype", "device", "batch", "heads", "head_dim")


def _value(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _series_labels(ok: pd.DataFrame, keys: list[str]) -> dict[tuple, str]:
    """Method name plus the parameters that vary among that method's own rows (and the set-up
    columns that vary across the report)."""
    setup = [k for k in keys if not k.startswith("param_") and k != "method" and ok[k].nunique() > 1]
    labels = {}
    for method, rows in ok.groupby("method", sort=False):
        mine = [k for k in keys if k.startswith("param_") and rows[k].nunique() > 1]
        for key, _ in rows.groupby(keys, sort=False):
            named = dict(zip(keys, key))
            labels[key] = " ".join([str(method)] + [f"{k.removeprefix('param_')}={_value(named[k])}"
                                                   for k in (*mine, *setup)])
    return labels


def _guides(ax, x: pd.Series, y: pd.Series) -> None:
    """O(n) and O(n^2) lines anchored at the smallest n and the median y there."""
    x0, x1 = x.min(), x.max()
    y0 = y[x == x0].median()
    if not (x1 > x0 and y0 > 0):
        return
    for power, style in ((1, ":"), (2, "--")):
        ax.plot([x0, x1], [y0, y0 * (x1 / x0) ** power], style, color="grey", lw=1,
                label=f"O(n{'' if power == 1 else '²'}) guide")


def efficiency_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    ok = frame[frame["status"] == "ok"].copy()
    keys = [k for k in (*SERIES_KEYS, *sorted(c for c in frame if c.startswith("param_"))) if k in ok]
    # A blank parameter (another method's) must group and compare equal: NaN does neither.
    ok[keys] = ok[keys].astype(object).where(ok[keys].notna(), "")
    labels = _series_labels(ok, keys)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(6 * len(PANELS), 5.2), layout="constrained")
    for ax, (column, ylabel) in zip(axes, PANELS):
        data = ok[ok[column].notna()] if column in ok else ok.iloc[0:0]
        for key, group in data.groupby(keys, sort=True):
            group = group.sort_values("seq_len")
            line, = ax.plot(group["seq_len"], group[column], marker="o", label=labels[key])
            if column == "time_ms_median" and "time_ms_iqr" in group:
                half = group["time_ms_iqr"].fillna(0) / 2
                ax.fill_between(group["seq_len"], group[column] - half, group[column] + half,
                                color=line.get_color(), alpha=0.2, lw=0)
        if not data.empty:
            _guides(ax, data["seq_len"], data[column])
        ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel=ylabel,
               title=ylabel.split(" (")[0])
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:  # one legend for all panels, below them, so it never covers data
        fig.legend(handles, names, loc="outside lower center", ncol=min(4, len(handles)), fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_report(frame: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Write <stem>-efficiency.png and .svg into out_dir; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = efficiency_figure(frame, title=stem)
    paths = [out_dir / f"{stem}-efficiency.{ext}" for ext in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths
