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
from attnbench.views.accuracy import breakdown_figure, density_figure, error_figure, pareto_figure, quality_figure  # noqa: E402
from attnbench.views.axes import (  # noqa: E402
    STYLES,
    bytes_axis,
    coinciding,
    describe,
    guides,
    length_axis,
    method_styles,
    value_axis,
)


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
    ok = frame[frame["status"] == "ok"]
    if not any(panel.column in ok and ok[panel.column].notna().any() for panel in _panels(frame)):
        return None  # no ok row with a time, memory or FLOPs: no empty figure
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
        stacked = coinciding({name: g.set_index("seq_len")[panel.column] for name, g in series.items()})
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
            guides(ax, data["seq_len"], data[panel.column])
        ax.set(xscale="log", yscale="log", xlabel="sequence length n",
               ylabel=panel.label.replace(" (bytes)", "") if panel.column.endswith("_bytes") else panel.label,
               title=panel.label.split(" (")[0])
        if not data.empty:
            length_axis(ax, data["seq_len"])
        if panel.column.endswith("_bytes"):
            bytes_axis(ax)
        else:
            value_axis(ax)
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


FORMATS = ("png", "svg", "pdf")


def plot_report(frame: pd.DataFrame, out_dir: Path, stem: str, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write <stem>-efficiency (when it has times, memory or FLOPs, and trained nothing) and, when
    the report has their columns, -stages (a profile), -error, -quality, -pareto, -density,
    -breakdown and -training-<task> (attnbench train: accuracy against cost), in each of
    `formats` into out_dir, titled with what they show; returns the paths."""
    from attnbench.views.profile import is_stage, stage_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    stages, frame = frame, frame[~is_stage(frame)]  # a profile's stage rows have a figure of their own
    title = describe(frame)
    from attnbench.views.learning import learning_figures

    trained = learning_figures(frame, title)  # a training report: accuracy against cost, not curves in n
    figures = {"efficiency": None if trained else efficiency_figure(frame, title=title),
               "stages": stage_figure(stages, title),
               "error": error_figure(frame, title),
               "quality": quality_figure(frame, title),
               "pareto": pareto_figure(frame, title), "density": density_figure(frame, title),
               "breakdown": breakdown_figure(frame, title), **trained}
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
