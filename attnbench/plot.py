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


SIZE_PARAMS = ("features", "landmarks", "proj_dim", "k", "clusters", "density", "sketch_dim", "bucket_size")


def _ok_with(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in frame:
        return frame.iloc[0:0]
    return frame[(frame["status"] == "ok") & frame[column].notna()]


def error_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Relative spectral error against each method's size parameter (features, landmarks, ...):
    one panel per input source (Skyformer's Fig. 1: initialised and pretrained), one line per
    method and length, error bars the spread over draws. A method with an exact target other than
    softmax (Skyformer: kernelized) is drawn against that target."""
    data = _ok_with(frame, "error_spectral")
    sources = sorted(data["inputs"].unique()) if "inputs" in data else [None]
    panels = []
    for source in sources:
        rows_here = data if source is None else data[data["inputs"] == source]
        lines = []
        for method, rows in rows_here.groupby("method"):
            size = next((f"param_{p}" for p in SIZE_PARAMS
                         if f"param_{p}" in rows and rows[f"param_{p}"].nunique() > 1), None)
            if not size:
                continue
            target = "error_target_spectral" in rows and rows["error_target_spectral"].notna().all()
            column = "error_target_spectral" if target else "error_spectral"
            against = f" vs {rows['error_target'].iloc[0]}" if target else ""
            for n, group in rows.groupby("seq_len"):
                lines.append((method, f"{method}{against} n={n}", n, group.sort_values(size), size, column))
        panels.append((source, lines))
    if not any(lines for _, lines in panels):
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2), layout="constrained", squeeze=False)
    methods = sorted({line[0] for _, lines in panels for line in lines})
    lengths = sorted({line[2] for _, lines in panels for line in lines})
    for ax, (source, lines) in zip(axes[0], panels):
        for method, label, n, group, size, column in lines:  # colour: method; line style: length
            ax.errorbar(group[size], group[column], yerr=group.get(f"{column}_std"), marker="o", capsize=3,
                        label=label, color=f"C{methods.index(method) % 10}",
                        linestyle=("-", "--", ":", "-.")[lengths.index(n) % 4])
        ax.set(xscale="log", yscale="log", xlabel="features / landmarks / projection size",
               ylabel="relative spectral-norm error ||O^ - O||2 / ||O||2",
               title=f"{source} inputs" if source else "approximation error")
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def pareto_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Error against time for every ok row that has both, with each length's Pareto front."""
    data = _ok_with(_ok_with(frame, "error_spectral"), "time_ms_median")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    for method, rows in data.groupby("method"):
        ax.scatter(rows["time_ms_median"], rows["error_spectral"], label=method, s=25)
    for n, rows in data.groupby("seq_len"):
        front, best = [], float("inf")
        for _, row in rows.sort_values("time_ms_median").iterrows():
            if row["error_spectral"] < best:
                best = row["error_spectral"]
                front.append((row["time_ms_median"], best))
        ax.step(*zip(*front), where="post", color="grey", lw=1, alpha=0.7)
    ax.set(xscale="log", yscale="log", xlabel="time per call (ms)", ylabel="relative spectral-norm error",
           title=title or "error against time (grey: Pareto front per length)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=4, fontsize=8)
    return fig


def density_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """SBM: mean mask density over heads (error bars: spread over heads) against length."""
    data = _ok_with(frame, "density_mean")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    keys = [c for c in ("param_density", "param_clusters", "mode") if c in data and data[c].nunique() > 1]
    for key, group in (data.groupby(keys) if keys else [((), data)]):
        group = group.sort_values("seq_len")
        label = " ".join(f"{k.removeprefix('param_')}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,)))
        ax.errorbar(group["seq_len"], group["density_mean"], yerr=group.get("density_std"), marker="o", capsize=3,
                    label=label or "sbm")
    ax.set(xscale="log", xlabel="sequence length n", ylabel="sampled mask density (mean over heads)",
           title=title or "SBM mask density per head (bars: spread over heads)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8)
    return fig


def plot_report(frame: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Write <stem>-efficiency (and, when the report has their columns, -error, -pareto and
    -density) as PNG and SVG into out_dir; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"efficiency": efficiency_figure(frame, title=stem), "error": error_figure(frame, stem),
               "pareto": pareto_figure(frame, stem), "density": density_figure(frame, stem)}
    paths = []
    for kind, fig in figures.items():
        if fig is None:
            continue
        for ext in ("png", "svg"):
            paths.append(out_dir / f"{stem}-{kind}.{ext}")
            fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def pattern_figure(method: str, seq_len: int, params: dict, *, heads: int, head_dim: int, seed: int,
                   path: Path) -> Path:
    """Full attention's weights (head 0) beside the method's pattern for up to four heads."""
    from attnbench.patterns import attention_pattern, reference_weights

    pattern, what = attention_pattern(method, seq_len, params, heads=heads, head_dim=head_dim, seed=seed)
    shown = min(heads, 4)
    fig, axes = plt.subplots(1, shown + 1, figsize=(3.6 * (shown + 1), 4.0), layout="constrained")
    panels = [(reference_weights(seq_len, heads=heads, head_dim=head_dim, seed=seed), "full: softmax weights, head 0")]
    panels += [(pattern[h], f"{method}: head {h}") for h in range(shown)]
    binary = what.startswith("attended")
    for ax, (matrix, title) in zip(axes, panels):
        ax.imshow(matrix.numpy(), cmap="Greys" if binary and matrix is not panels[0][0] else "viridis",
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
    density = float((pattern > 0).double().mean())
    fig.suptitle(f"{method} at n={seq_len}: {what}; {100 * density:.1f}% of pairs nonzero")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
