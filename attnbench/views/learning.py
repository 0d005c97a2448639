"""Quality at a cost (attnbench train): per task, held-out accuracy against the training time the
budget took and against one step's peak memory, a point per method (its median over seeds, the
bars their range) and the Pareto front: the points no other point beats on both axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from attnbench.results.schema import Labeller  # noqa: E402
from attnbench.views.axes import bytes_axis, describe, method_styles, ok_with  # noqa: E402

AXES = (("train_s", "training time for the budget (s)"), ("peak_mem_bytes", "peak memory of one step"))


def task_settings(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(a name such as 'mqar-n64-pairs8-vocab128', its rows) per task, length (and MQAR's pairs
    and vocabulary) of the report's trained rows."""
    data = ok_with(frame, "test_accuracy")
    if data.empty or "train_task" not in data:
        return []
    mqar = "pairs" in data and data["pairs"].notna().any()
    keys = ["train_task", "seq_len"] + (["pairs", "vocab"] if mqar else [])
    settings = []
    for key, rows in data.groupby(keys, dropna=False):
        task, n, *pairs = key
        name = f"{task}-n{n}"
        if pairs and pd.notna(pairs[0]):  # MQAR: its pairs and vocabulary are choices
            name += f"-pairs{int(pairs[0])}-vocab{int(pairs[1])}"
        settings.append((name, rows))
    return settings


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """A point per case series (seeds pooled): median, lowest and highest accuracy, time and memory."""
    records = rows.to_dict("records")
    label = Labeller([{k: v for k, v in r.items() if k != "seed"} for r in records], with_length=False)
    rows = rows.assign(series=[label({k: v for k, v in r.items() if k != "seed"}) for r in records])
    columns = ["test_accuracy"] + [c for c, _ in AXES if c in rows]
    grouped = rows.groupby(["series", "method"])[columns]
    return pd.concat([grouped.median(), grouped.min().add_suffix("_low"), grouped.max().add_suffix("_high"),
                      grouped.size().rename("seeds")], axis=1).reset_index()


def front(points: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The points that no cheaper (or as cheap) point matches in accuracy, cheapest first."""
    best, kept = float("-inf"), []
    for index, row in points.sort_values([cost, "test_accuracy"], ascending=[True, False]).iterrows():
        if row["test_accuracy"] > best:
            best = row["test_accuracy"]
            kept.append(index)
    return points.loc[kept]


def learning_figures(frame: pd.DataFrame, title: str = "") -> dict[str, plt.Figure]:
    """{'training-<setting>': its figure} for every task setting the report trained, each titled with
    its own set-up (`title`, the report's, is not needed: a setting's rows say theirs)."""
    figures, styles = {}, method_styles(frame)
    for name, rows in task_settings(frame):
        points = summarize(rows)
        axes_here = [(c, label) for c, label in AXES if c in points and points[c].notna().any()]
        fig, axes = plt.subplots(1, len(axes_here), figsize=(6.5 * len(axes_here), 5.2), layout="constrained",
                                 squeeze=False)
        for ax, (cost, label) in zip(axes[0], axes_here):
            data = points[points[cost].notna()]
            for _, p in data.iterrows():
                ax.errorbar(p[cost], 100 * p["test_accuracy"], xerr=[[p[cost] - p[f"{cost}_low"]],
                                                                      [p[f"{cost}_high"] - p[cost]]],
                            yerr=[[100 * (p["test_accuracy"] - p["test_accuracy_low"])],
                                  [100 * (p["test_accuracy_high"] - p["test_accuracy"])]],
                            linestyle="none", capsize=2, label=p["series"], **styles[p["method"]])
            best = front(data, cost)
            ax.step(best[cost], 100 * best["test_accuracy"], where="post", color="grey", lw=1, alpha=0.8, zorder=0)
            ax.set(xscale="log", xlabel=label, ylabel="held-out accuracy (%)", title=f"accuracy against {label}")
            if cost.endswith("_bytes"):
                bytes_axis(ax, "x")
            else:  # seconds as plain numbers, not powers of ten
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.grid(True, which="both", alpha=0.3)
        seeds = int(points["seeds"].max())
        fig.suptitle(f"{name} ({describe(rows)}): median of {seeds} seed(s), bars their range; grey: the Pareto "
                     "front")
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncol=min(5, len(handles)), fontsize=8)
        figures[f"training-{name}"] = fig
    return figures
