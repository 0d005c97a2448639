"""A training report read by summary, the Pareto figure and the front (rows written here: the
training itself is tests/execute/test_training.py's)."""

import pandas as pd

from attnbench.judge.learning import on_front, training_lines
from attnbench.views.learning import front, learning_figures, summarize


def trained(method, seed, accuracy, seconds, memory, pairs=4, status="ok"):
    return {"method": method, "seq_len": 64, "seed": seed, "status": status, "train_task": "mqar", "pairs": pairs,
            "vocab": 128,
            "test_accuracy": accuracy, "train_s": seconds, "peak_mem_bytes": memory, "train_budget": "400 steps"}


REPORT = [trained("full", 0, 0.99, 20.0, 8e6), trained("full", 1, 0.97, 22.0, 8e6),
          trained("linear", 0, 0.30, 18.0, 9e6), trained("linear", 1, 0.20, 18.0, 9e6),
          trained("reformer", 0, 0.10, 30.0, 20e6), trained("reformer", 1, 0.12, 32.0, 20e6),
          trained("skyformer", 0, None, None, None, status="unsupported"),
          trained("full", 0, 0.50, 20.0, 8e6, pairs=8)]


def test_the_front_keeps_what_no_cheaper_point_matches():
    assert on_front({"a": (1.0, 0.2), "b": (2.0, 0.9), "c": (3.0, 0.5), "d": (0.5, 0.1)}) == {"a", "b", "d"}
    points = pd.DataFrame({"train_s": [1.0, 2.0, 3.0], "test_accuracy": [0.2, 0.9, 0.5]})
    assert front(points, "train_s")["train_s"].tolist() == [1.0, 2.0]


def test_summary_pools_seeds_per_task_setting_and_marks_the_front():
    lines = training_lines(REPORT)
    assert lines[0].startswith("mqar n=64 pairs=4 vocab=128 (budget 400 steps)")
    assert lines[1].startswith("  full: 98.0% [97.0-99.0] over 2 seed(s); 21.0 s;") and "on the front" in lines[1]
    assert lines[2].startswith("  linear: 25.0% [20.0-30.0]") and "on the front" in lines[2]
    assert lines[3].startswith("  reformer: 11.0%") and "front" not in lines[3]
    assert lines[4].startswith("mqar n=64 pairs=8") and lines[5].startswith("  full: 50.0% over 1 seed(s)")


def test_one_figure_per_task_setting_with_accuracy_against_time_and_memory():
    frame = pd.DataFrame(REPORT)
    points = summarize(frame[(frame["status"] == "ok") & (frame["pairs"] == 4)])
    full = points[points["method"] == "full"].iloc[0]
    assert (full["test_accuracy"], full["test_accuracy_low"], full["train_s_high"], full["seeds"]) == (0.98, 0.97,
                                                                                                       22.0, 2)
    figures = learning_figures(frame, "quality")
    assert sorted(figures) == ["training-mqar-n64-pairs4-vocab128", "training-mqar-n64-pairs8-vocab128"]
    axes = figures["training-mqar-n64-pairs4-vocab128"].axes
    assert [ax.get_ylabel() for ax in axes] == ["held-out accuracy (%)"] * 2
    assert "training time" in axes[0].get_xlabel() and "peak memory" in axes[1].get_xlabel()
    assert len(axes[0].containers) == 3  # one point with its bars per method that trained
    assert learning_figures(frame.drop(columns="test_accuracy")) == {}
