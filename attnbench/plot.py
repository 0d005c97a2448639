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


def _series_label(key: dict, varying: set[str]) -> str:
    parts = [str(key["method"])]
    parts += [f"{k.removeprefix('param_')}={v}" for k, v in key.items() if k in varying and k != "method"]
    return " ".join(parts)


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
    ok[keys] = ok[keys].astype(str)
    varying = {k for k in keys if ok[k].nunique() > 1}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(6 * len(PANELS), 4.8), layout="constrained")
    for ax, (column, ylabel) in zip(axes, PANELS):
        data = ok[ok[column].notna()] if column in ok else ok.iloc[0:0]
        for key, group in data.groupby(keys, sort=True):
            group = group.sort_values("seq_len")
            label = _series_label(dict(zip(keys, key)), varying)
            line, = ax.plot(group["seq_len"], group[column], marker="o", label=label)
            if column == "time_ms_median" and "time_ms_iqr" in group:
                half = group["time_ms_iqr"].fillna(0) / 2
                ax.fill_between(group["seq_len"], group[column] - half, group[column] + half,
                                color=line.get_color(), alpha=0.2, lw=0)
        if not data.empty:
            _guides(ax, data["seq_len"], data[column])
        ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel=ylabel,
               title=ylabel.split(" (")[0])
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8, loc="upper left")
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
