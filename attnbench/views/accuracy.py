"""Figures of quality, from a report's error, conditioning and SBM density columns: error against
each method's size parameter, error and conditioning per layer (or n), where approximations break
down, error against time with its Pareto front, and SBM's mask density."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from attnbench.results.schema import Labeller  # noqa: E402
from attnbench.views.axes import SIZE_PARAMS, STYLES, length_axis, method_styles, ok_with, value_axis  # noqa: E402


def _error_panels(frame: pd.DataFrame) -> list:
    """The error figure's panels: (input source, its lines), a line per method with a varying size
    parameter and per length."""
    data = ok_with(frame, "error_spectral")
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
    return panels


def error_figure(frame: pd.DataFrame, title: str = "") -> plt.Figure | None:
    """Relative spectral error against each method's size parameter (features, landmarks, ...):
    one panel per input source (Skyformer's Fig. 1: initialised and pretrained), one line per
    method and length, error bars the spread over draws. A method with an exact target other than
    softmax (Skyformer: kernelized) is drawn against that target."""
    panels = _error_panels(frame)
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
            length_axis(ax, sizes)  # ticks at the measured sizes
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
    if not panels or (not by_layer and any(lines for _, lines in _error_panels(frame))):
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
            length_axis(ax, data[x])
        value_axis(ax)
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
    data = ok_with(ok_with(frame, "error_spectral"), "cond_score_max")
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
    data = ok_with(ok_with(frame, "error_spectral"), "time_ms_median").copy()
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
    data = ok_with(frame, "density_mean")
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
    length_axis(ax, data["seq_len"])
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8)
    return fig
