"""Efficiency curves from a report: time, peak memory and FLOPs against sequence length.

Log-log axes, one panel per metric that declares one (attnbench.metrics), one line per method
and parameter set, the IQR as a band around the median time, and O(n) / O(n^2) guides. Rows
that did not finish ('oom', 'error', ...) are left out, so a line stops where its method
stopped fitting.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from attnbench.results.schema import Labeller  # noqa: E402


def _guides(ax, x: pd.Series, y: pd.Series) -> None:
    """O(n) and O(n^2) lines anchored at the smallest n and the median y there."""
    x0, x1 = x.min(), x.max()
    y0 = y[x == x0].median()
    if not (x1 > x0 and y0 > 0):
        return
    for power, style in ((1, ":"), (2, "--")):
        ax.plot([x0, x1], [y0, y0 * (x1 / x0) ** power], style, color="grey", lw=1,
                label=f"O(n{'' if power == 1 else '²'}) guide")


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
STYLES = ("-", "--", ":", "-.")
SETUP = (("batch", "b={}"), ("heads", "h={}"), ("kv_heads", "kv heads={}"), ("head_dim", "d={}"),
         ("q_seq_len", "q_seq={}"), ("causal", "{}"), ("dtype", "{}"), ("device", "{}"),
         ("scope", "{} scope"), ("mode", "{}"))


def method_styles(frame: pd.DataFrame) -> dict[str, dict]:
    """One colour and one marker per method, the same in every figure of a report (methods sorted)."""
    methods = sorted(str(m) for m in frame["method"].dropna().unique()) if "method" in frame else []
    return {m: {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)]} for i, m in enumerate(methods)}


def describe(frame: pd.DataFrame) -> str:
    """What the figures show, for their title: shape, dtype, device, scope and mode (a value per
    column, or the values it takes)."""
    parts = []
    for column, spec in SETUP:
        if column in frame:
            values = [f"{v:g}" if isinstance(v, float) else str(v) for v in frame[column].dropna().unique()]
            if column == "causal":  # named when a mask is on; bidirectional rows are today's default
                values = [] if values == ["False"] else ["causal" if v == "True" else "bidirectional" for v in values]
            if values:
                parts.append(spec.format("/".join(sorted(values))))
    return ", ".join(parts)


def _length_axis(ax, lengths) -> None:
    """Ticks at the measured lengths, written 512, 1k, 2k, 4k."""
    from matplotlib.ticker import NullLocator

    ticks = sorted({int(n) for n in lengths})
    ax.set_xticks(ticks, [f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n) for n in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _short(value: float) -> str:
    """A tick's number: 0.5, 2, 50, 200 k, 3 G (never 4x10^0)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= 10 * scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g}"


def _value_axis(ax) -> None:
    """Log ticks at 1, 2 and 5 of each decade, written as plain numbers: a panel whose values span
    less than a decade (one length, close methods) still reads without powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _short(value)))


def _coinciding(curves: dict[str, pd.Series]) -> dict[str, tuple[int, int]]:
    """Each series' (place, count) among the series it lies on (the same lengths, values within
    3%: no further apart than a marker on a log axis), in drawing order: equal FLOP counts of
    several methods would otherwise hide all but the last line drawn."""
    groups: list[list[str]] = []
    for name, curve in curves.items():
        for group in groups:
            other = curves[group[0]]
            if curve.index.equals(other.index) and ((curve - other).abs() <= 0.03 * other.abs()).all():
                group.append(name)
                break
        else:
            groups.append([name])
    return {name: (place, len(group)) for group in groups for place, name in enumerate(group)}


def _bytes_axis(ax) -> None:
    """Ticks at powers of 4 bytes, written 1 MiB, 4 MiB, 16 MiB (decades of bytes read badly)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    from attnbench.metrics.display import fmt_bytes

    ax.yaxis.set_major_locator(LogLocator(base=4))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: fmt_bytes(value).replace(".0 ", " ")))


def _panels(frame: pd.DataFrame) -> list:
    """The efficiency panels of every metric with data in the report (time first if present)."""
    from attnbench.metrics import all_metrics

    panels = [panel for metric in all_metrics() for panel in metric.panels]
    panels.sort(key=lambda panel: panel.column != "time_ms_median")
    with_data = [panel for panel in panels if panel.column in frame and frame[panel.column].notna().any()]
    return with_data or panels[:1]


def efficiency_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Each metric's panel (time, peak memory, FLOPs, ...) against n, one line per case series;
    None where no panel has data (a report of error or conditioning only)."""
    if not any(panel.column in frame and frame[panel.column].notna().any() for panel in _panels(frame)):
        return None
    ok = frame[frame["status"] == "ok"]
    records = ok.to_dict("records")
    label = Labeller(records, with_length=False)
    ok = ok.assign(_series=[label(row) for row in records])
    panels, styles = _panels(frame), method_styles(frame)
    variants: dict[str, list[str]] = {}  # a method's series, in order: each gets its own line style
    for name, method in sorted(set(zip(ok["_series"], ok["method"]))):
        variants.setdefault(method, []).append(name)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.2), layout="constrained", squeeze=False)
    noisy_drawn = False
    for ax, panel in zip(axes[0], panels):
        data = ok[ok[panel.column].notna()] if panel.column in ok else ok.iloc[0:0]
        series = {name: group.sort_values("seq_len") for name, group in data.groupby("_series", sort=True)}
        stacked = _coinciding({name: g.set_index("seq_len")[panel.column] for name, g in series.items()})
        for name, group in series.items():
            method = group["method"].iloc[0]
            style = STYLES[variants[method].index(name) % len(STYLES)]
            place, count = stacked[name]
            under = count - 1 - place  # lines drawn later on the same values: this one is drawn wider, beneath
            line, = ax.plot(group["seq_len"], group[panel.column], linestyle=style, label=name,
                            lw=1.5 + 2.5 * under, markersize=6 + 4 * under, zorder=2 + place, **styles[method])
            if panel.column == "time_ms_median" and "time_noisy" in group:  # noisy timings drawn hollow
                noisy = group[group["time_noisy"].eq(True)]
                if not noisy.empty:
                    noisy_drawn = True
                    ax.plot(noisy["seq_len"], noisy[panel.column], linestyle="none", marker=styles[method]["marker"],
                            markerfacecolor="white", markeredgecolor=line.get_color(), zorder=3 + count)
            if panel.band and panel.band in group:
                half = group[panel.band].fillna(0) / 2
                ax.fill_between(group["seq_len"], group[panel.column] - half, group[panel.column] + half,
                                color=line.get_color(), alpha=0.2, lw=0)
        if not data.empty:
            _guides(ax, data["seq_len"], data[panel.column])
        ax.set(xscale="log", yscale="log", xlabel="sequence length n",
               ylabel=panel.label.replace(" (bytes)", "") if panel.column.endswith("_bytes") else panel.label,
               title=panel.label.split(" (")[0])
        if not data.empty:
            _length_axis(ax, data["seq_len"])
        if panel.column.endswith("_bytes"):
            _bytes_axis(ax)
        else:
            _value_axis(ax)
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    if noisy_drawn:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="grey"))
        names.append("hollow: a noisy time")
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
    styles = method_styles(frame)
    lengths = sorted({line[2] for _, lines in panels for line in lines})
    for ax, (source, lines) in zip(axes[0], panels):
        for method, label, n, group, size, column in lines:  # colour and marker: method; line style: length
            ax.errorbar(group[size], group[column], yerr=group.get(f"{column}_std"), capsize=3, label=label,
                        linestyle=STYLES[lengths.index(n) % len(STYLES)], **styles[method])
        ax.set(xscale="log", yscale="log", xlabel="features / landmarks / projection size",
               ylabel="relative spectral-norm error ||O^ - O||2 / ||O||2",
               title=f"{source} inputs" if source else "approximation error")
        sizes = [value for line in lines for value in line[3][line[4]].dropna()]
        if sizes:
            _length_axis(ax, sizes)  # ticks at the measured sizes
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


QUALITY_PANELS = (("error_spectral", "relative spectral-norm error ||O^ - O||2 / ||O||2"),
                  ("error_model_spectral", "error against the model's own output"),
                  ("cond_score_max", "largest |q.k| / sqrt(head_dim)"),
                  ("cond_landmark_condition", "condition number of the landmark matrix"))


def quality_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Error and conditioning per method against the model layer (captured or pretrained inputs,
    where the layer varies) or against n: what a report of the error and conditioning metrics
    holds, with or without a time. None when the report has no such column, or when the error
    figure already draws it against a size parameter and no layer varies."""
    ok = frame[frame["status"] == "ok"]
    panels = [(column, text) for column, text in QUALITY_PANELS if column in ok and ok[column].notna().any()]
    by_layer = "layer" in ok and ok.loc[ok[panels[0][0]].notna(), "layer"].nunique() > 1 if panels else False
    if not panels or (not by_layer and error_figure(frame) is not None):
        return None
    x = "layer" if by_layer else "seq_len"
    records = [{**row, x: None} for row in ok.to_dict("records")]  # the x axis names no series
    label = Labeller(records, with_length=by_layer and ok["seq_len"].nunique() > 1)
    ok = ok.assign(_series=[label(row) for row in records])
    styles = method_styles(frame)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.2), layout="constrained", squeeze=False)
    for ax, (column, text) in zip(axes[0], panels):
        data = ok[ok[column].notna()]
        for index, (name, group) in enumerate(data.groupby("_series", sort=True)):
            curve = group.groupby(x)[column].median().sort_index()  # draws of one point: their median
            method = group["method"].iloc[0]
            ax.plot(curve.index, curve.values, linestyle=STYLES[index % len(STYLES)], label=name, **styles[method])
        ax.set(yscale="log", xlabel="model layer" if by_layer else "sequence length n", ylabel=text,
               title=text.split(" ||")[0])
        if by_layer:
            ax.set_xticks(sorted(int(v) for v in data[x].unique()))
        else:
            ax.set_xscale("log")
            _length_axis(ax, data[x])
        _value_axis(ax)
        ax.grid(True, which="both", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncol=min(4, len(handles)), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def breakdown_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Where an approximation breaks: relative spectral error against the largest |q.k| / sqrt(p)
    of the case (the conditioning metric), one line per method and size over random inputs of
    growing scale, the first point at or past error 1 (no better than outputting zeros) circled,
    and real q, k, v (init, pretrained) as hollow points on the same axes."""
    data = _ok_with(_ok_with(frame, "error_spectral"), "cond_score_max")
    if data.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    styles = method_styles(frame)
    random = data[data["inputs"] == "random"] if "inputs" in data else data
    for method, rows in random.groupby("method"):
        size = next((f"param_{p}" for p in SIZE_PARAMS if f"param_{p}" in rows and rows[f"param_{p}"].notna().any()),
                    None)
        groups = rows.groupby(size) if size else [(None, rows)]
        for index, (value, group) in enumerate(groups):
            curve = group.groupby("cond_score_max")["error_spectral"].median().sort_index()
            label = f"{method} {size.removeprefix('param_')}={value:g}" if size else method
            ax.plot(curve.index, curve.values, linestyle=STYLES[index % len(STYLES)], label=label, **styles[method])
            broken = curve[curve >= 1.0]
            if not broken.empty:
                ax.scatter([broken.index[0]], [broken.iloc[0]], s=160, facecolors="none", edgecolors="black", lw=1.2)
    real = data[data["inputs"] != "random"] if "inputs" in data else data.iloc[0:0]
    for (method, source), rows in real.groupby(["method", "inputs"]):
        ax.scatter(rows["cond_score_max"], rows["error_spectral"], s=45, facecolors="none",
                   edgecolors=styles[method]["color"], marker="o" if source == "pretrained" else "s",
                   label=f"{method}, {source} inputs")
    ax.axhline(1.0, color="grey", lw=1, linestyle="--", label="error 1: no better than zeros")
    ax.set(xscale="log", yscale="log", xlabel="largest |q.k| / sqrt(head_dim) of the case",
           ylabel="relative spectral-norm error against softmax attention",
           title=title or "where approximations break (circled: first point at error >= 1)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside right center", fontsize=7)
    return fig


def pareto_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Error against time for every ok row that has both, with each length's Pareto front; a
    method with an exact target of its own (Skyformer: kernelized) is placed by its error against
    that target, as the error figure draws it."""
    data = _ok_with(_ok_with(frame, "error_spectral"), "time_ms_median").copy()
    if data.empty:
        return None
    if "error_target_spectral" in data:  # the error against what the method approximates
        data["error_spectral"] = data["error_target_spectral"].where(data["error_target_spectral"].notna(),
                                                                     data["error_spectral"])
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    styles = method_styles(frame)
    for method, rows in data.groupby("method"):
        ax.scatter(rows["time_ms_median"], rows["error_spectral"], label=method, s=25, **styles[method])
    for _, rows in data.groupby("seq_len"):
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
    sbm = method_styles(frame).get("sbm", {"color": "C0", "marker": "o"})  # its colour in the other figures
    groups = list(data.groupby(keys) if keys else [((), data)])
    for index, (key, group) in enumerate(groups):
        group = group.sort_values("seq_len")
        values = key if isinstance(key, tuple) else (key,)
        label = " ".join(f"{k.removeprefix('param_')}={v}" for k, v in zip(keys, values))
        ax.errorbar(group["seq_len"], group["density_mean"], yerr=group.get("density_std"), capsize=3,
                    label=label or "sbm", linestyle=STYLES[index % len(STYLES)], **sbm)
    ax.set(xscale="log", xlabel="sequence length n", ylabel="sampled mask density (mean over heads)",
           title=title or "SBM mask density per head (bars: spread over heads)")
    _length_axis(ax, data["seq_len"])
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8)
    return fig


FORMATS = ("png", "svg", "pdf")


def plot_report(frame: pd.DataFrame, out_dir: Path, stem: str, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write <stem>-efficiency (when it has times, memory or FLOPs) and, when the report has their
    columns, -error, -quality, -pareto, -density and -breakdown, in each of `formats` into out_dir,
    titled with what they show; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = describe(frame)
    figures = {"efficiency": efficiency_figure(frame, title=title), "error": error_figure(frame, title),
               "quality": quality_figure(frame, title),
               "pareto": pareto_figure(frame, title), "density": density_figure(frame, title),
               "breakdown": breakdown_figure(frame, title)}
    paths = []
    for kind, fig in figures.items():
        if fig is None:
            continue
        for ext in formats:
            paths.append(out_dir / f"{stem}-{kind}.{ext}")
            fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def pattern_figure(method: str, seq_len: int, params: dict, *, heads: int, head_dim: int, seed: int,
                   path: Path, causal: bool = False) -> Path:
    """Full attention's weights (head 0) beside the method's pattern for up to four heads."""
    from attnbench.views.patterns import attention_pattern, reference_weights

    pattern, what = attention_pattern(method, seq_len, params, heads=heads, head_dim=head_dim, seed=seed,
                                      causal=causal)
    shown = min(heads, 4)
    fig, axes = plt.subplots(1, shown + 1, figsize=(3.6 * (shown + 1), 4.0), layout="constrained")
    panels = [(reference_weights(seq_len, heads=heads, head_dim=head_dim, seed=seed, causal=causal),
               f"full{' (causal)' if causal else ''}: softmax weights, head 0")]
    panels += [(pattern[h], f"{method}: head {h}") for h in range(shown)]
    binary = what.startswith("attended")
    for ax, (matrix, title) in zip(axes, panels):
        ax.imshow(matrix.numpy(), cmap="Greys" if binary and matrix is not panels[0][0] else "viridis",
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
    density = float((pattern > 0).double().mean())
    fig.suptitle(f"{method}{' causal' if causal else ''} at n={seq_len}: {what}; {100 * density:.1f}% of pairs "
                 "nonzero")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- a history's series (attnbench.judge.history) ----

def plot_history(series: list, path: Path, limit: int = 24) -> Path:
    """history_figure saved to `path`."""
    import matplotlib.pyplot as plt

    fig = history_figure(series, limit)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def history_figure(series: list, limit: int = 24):
    """Each series with a step (all of them when none has one), its change points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in series if s.steps] or series
    shown = shown[:limit]
    columns = min(3, len(shown))
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3 * rows), squeeze=False)
    for ax, s in zip(axes.flat, shown):
        ax.plot(range(len(s.values)), s.values, marker="o")
        for step in s.steps:
            ax.axvline(step.index - 0.5, color="tab:red", linestyle="--")
            ax.annotate(f"x{step.ratio:.2f}", (step.index - 0.5, max(s.values)), color="tab:red", fontsize=8)
        ax.set_title(f"{s.label}: {s.column}", fontsize=9)
        by_report = s.by == "report"
        names = [c[-16:] if by_report else c[:7] for c in s.commits]  # a report's name ends in its time
        every = max(1, -(-len(names) // 8))  # at most 8 labels: a long history labels every k-th point
        ax.set_xticks(range(0, len(names), every), names[::every], rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("report (one commit: in the order they ran)" if by_report else "commit", fontsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
