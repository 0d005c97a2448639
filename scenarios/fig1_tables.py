"""The tables behind the Fig. 1 section of docs/reproductions.md, from the committed reports.

Median relative spectral error over n = 512..2048 (and draws) per method, input source and size
(features / landmarks / projection), beside the conditioning figures that explain it: the score
range, the exact attention's peakiness, and for the methods that divide by approximated row sums
the share of rows whose sum falls below half the exact one or to zero or below. And where each
method's error first reaches 1 in the breakdown sweep (random inputs of growing scale).

Usage: python scenarios/fig1_tables.py [reports/measured]   (writes <folder>/skyformer-fig1.md)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from attnbench.results.report import load

SIZES = ("param_features", "param_landmarks", "param_proj_dim")


def _size(frame: pd.DataFrame) -> pd.Series:
    found = pd.Series(pd.NA, index=frame.index, dtype="object")
    for column in SIZES:
        if column in frame:
            found = found.fillna(frame[column])
    return found


def error_table(frame: pd.DataFrame, column: str = "error_spectral") -> list[str]:
    ok = frame[frame["status"] == "ok"].assign(size=lambda f: _size(f))
    table = ok.pivot_table(index=["inputs", "method"], columns="size", values=column, aggfunc="median")
    sizes = [int(s) for s in table.columns]
    lines = ["| inputs | method | " + " | ".join(f"{s}" for s in sizes) + " |", "|---|---|" + "---|" * len(sizes)]
    for (source, method), row in table.iterrows():
        lines.append(f"| {source} | {method} | " + " | ".join(f"{v:.3g}" for v in row.values) + " |")
    return lines


def conditioning_table(frame: pd.DataFrame) -> list[str]:
    ok = frame[frame["status"] == "ok"].assign(size=lambda f: _size(f))
    lines = ["| inputs | method | size | max abs score | peak weight | rows with sum < half | rows with sum <= 0 |"
             " error |", "|---|---|---|---|---|---|---|---|"]
    for (source, method, size), rows in ok.groupby(["inputs", "method", "size"]):
        low, nonpositive = rows.get("cond_row_sums_low"), rows.get("cond_row_sums_nonpositive")
        cells = [f"{rows['cond_score_max'].median():.3g}", f"{rows['cond_peak_weight_mean'].median():.3g}",
                 "-" if low is None or low.isna().all() else f"{low.median():.3f}",
                 "-" if nonpositive is None or nonpositive.isna().all() else f"{nonpositive.median():.3f}",
                 f"{rows['error_spectral'].median():.3g}"]
        lines.append(f"| {source} | {method} | {int(size)} | " + " | ".join(cells) + " |")
    return lines


def breakdown_lines(frame: pd.DataFrame) -> list[str]:
    ok = frame[(frame["status"] == "ok") & (frame["inputs"] == "random")].assign(size=lambda f: _size(f))
    lines = ["| method | size | error at scale 0.25 / 1 / 3 | first scale (max abs score) with error >= 1 |",
             "|---|---|---|---|"]
    for (method, size), rows in ok.groupby(["method", "size"]):
        rows = rows.sort_values("input_scale")
        at = {s: rows.loc[rows["input_scale"] == s, "error_spectral"].median() for s in (0.25, 1.0, 3.0)}
        broken = rows[rows["error_spectral"] >= 1.0]
        first = broken.iloc[0] if not broken.empty else None
        where = "never" if first is None else f"{first['input_scale']:g} ({first['cond_score_max']:.3g})"
        lines.append(f"| {method} | {int(size)} | " + " / ".join(f"{v:.3g}" for v in at.values()) + f" | {where} |")
    return lines


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/measured")
    fig1 = load(folder / "skyformer-fig1.csv").frame
    kernelized = load(folder / "skyformer-fig1-kernelized.csv").frame
    breakdown = load(folder / "approx-breakdown.csv").frame
    text = ["# Skyformer Fig. 1 and where the approximations break", "",
            "## error against softmax attention (median over n = 512, 1024, 2048 and 3 draws), by size", "",
            *error_table(fig1), "",
            "## Skyformer against its own target, kernelized attention (skyformer_fig1_kernelized)", "",
            *error_table(kernelized, "error_target_spectral"), "",
            "## conditioning beside the error (medians over n and draws)", "", *conditioning_table(fig1), "",
            "## breakdown sweep (random inputs, n = 512)", "", *breakdown_lines(breakdown), ""]
    (folder / "skyformer-fig1.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
