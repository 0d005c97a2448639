r"""What a training report shows (docs/quality.md's findings come from it), as markdown.

    python scenarios/quality_summary.py reports/measured/quality-cpu.csv reports/measured/quality-sizes.csv \
        > reports/measured/quality-38.md

Per task setting: each method's held-out accuracy (median over seeds, their range), the steps its
budget allowed, its training time, one step's FLOPs and peak memory, and whether it is on the
Pareto front of accuracy against time; the methods the task refused, and why. Then, where at least
three methods trained:
- MQAR: exact attention against the linear and kernel methods (Zoology's finding);
- ListOps: our ranking against the papers' ListOps columns (SBM Table 1, Skyformer Table 1), as
  Spearman's rho over the methods both have (direction only: our budget is minutes, theirs days);
- per setting, how well each method's spectral error predicts its accuracy: the relative spectral
  error of its output against full attention on the task's own q, k, v (the first layer of the
  seed-0 model at initialisation, a batch of the task), and Spearman's rho between error and
  accuracy over the methods, with a 95% bootstrap interval (methods resampled).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import numpy as np

from attnbench.judge.learning import on_front
from attnbench.metrics.display import fmt_bytes, fmt_count
from attnbench.results.report import load

# The papers' ListOps accuracy (%): SBM-Transformer Table 1 (n = 2k) and Skyformer Table 1.
PAPERS = {
    "SBM-Transformer Table 1": {"full": 37.22, "linear": 37.46, "reformer": 22.92, "performer": 18.25,
                                "linformer": 38.44, "nystromformer": 37.22, "sbm": 37.45},
    "Skyformer Table 1": {"full": 38.37, "kernelized": 38.78, "nystromformer": 38.51, "linformer": 37.45,
                          "informer": 32.53, "performer": 38.02, "reformer": 37.68, "bigbird": 39.25,
                          "skyformer": 38.69},
}
LINEAR_AND_KERNEL = ("linear", "performer")  # Zoology's efficient substitutes among ours with a causal form
RESAMPLES = 2000


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties share their mean rank)."""
    import pandas as pd

    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def interval(x: list[float], y: list[float], seed: int = 0) -> tuple[float, float]:
    """A 95% percentile bootstrap interval of Spearman's rho, resampling the pairs."""
    rng, found = np.random.default_rng(seed), []
    for _ in range(RESAMPLES):
        pick = rng.integers(0, len(x), len(x))
        rho = spearman([x[i] for i in pick], [y[i] for i in pick])
        if rho == rho:
            found.append(rho)
    return (float(np.percentile(found, 2.5)), float(np.percentile(found, 97.5))) if found else (float("nan"),) * 2


def settings(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("train_task"):
            pairs = f", {row['pairs']} pairs, vocabulary {row['vocab']}" if row.get("pairs") else ""
            out.setdefault(f"{row['train_task']}, n = {row['seq_len']}{pairs}", []).append(row)
    return out


def method_points(rows: list[dict]) -> dict[str, dict]:
    """Per method (seeds pooled), its ok rows' medians and range."""
    points: dict[str, dict] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        ok = [r for r in rows if r["method"] == method and r["status"] == "ok"]
        if not ok:
            continue
        accuracy = [r["test_accuracy"] for r in ok]
        points[method] = {"accuracy": statistics.median(accuracy), "low": min(accuracy), "high": max(accuracy),
                          "seeds": len(ok), "steps": statistics.median(r["train_steps"] for r in ok),
                          "train_s": statistics.median(r["train_s"] for r in ok),
                          "flops": ok[0].get("flops"), "memory": statistics.median(r["peak_mem_bytes"] for r in ok),
                          "row": ok[0]}
    return points


def table(rows: list[dict], points: dict[str, dict]) -> list[str]:
    front = on_front({m: (p["train_s"], p["accuracy"]) for m, p in points.items()})
    lines = ["| method | held-out accuracy, median [range] | steps | training s | FLOPs per step | peak memory | "
             "front |", "|---|---|---|---|---|---|---|"]
    for method, p in sorted(points.items(), key=lambda item: -item[1]["accuracy"]):
        lines.append(f"| {method} | {100 * p['accuracy']:.1f}% [{100 * p['low']:.1f}-{100 * p['high']:.1f}] "
                     f"({p['seeds']} seeds) | {p['steps']:.0f} | {p['train_s']:.1f} | {fmt_count(p['flops'])} | "
                     f"{fmt_bytes(p['memory'])} | {'yes' if method in front else ''} |")
    refused = {r["method"]: f"{r['status']}: {r['status_detail']}" for r in rows if r["status"] != "ok"}
    lines += [f"- {method} {why}" for method, why in refused.items() if method not in points]
    return lines


def task_qkv(row: dict):
    """The q, k, v the first layer of the seed-0 model at initialisation sees on a batch of the task."""
    import torch

    from attnbench.execute.model import kept_inputs, prepare_network
    from attnbench.plan.case import Case

    case = dataclasses.replace(Case.of(row), method="full", params={}, mode="forward", seed=0)
    prepared = prepare_network(case, case.instance(), device="cpu", dtype=torch.float32,
                               generator=torch.Generator().manual_seed(0))
    return kept_inputs(prepared.attentions, prepared.call)[0]


def spectral_errors(points: dict[str, dict]) -> dict[str, float]:
    import torch

    from attnbench.metrics.error import case_errors
    from attnbench.plan.case import Case

    q, k, v = task_qkv(next(iter(points.values()))["row"])
    errors = {}
    for method, p in points.items():
        case = dataclasses.replace(Case.of(p["row"]), scope="attention", mode="forward", seed=0, train_task=None,
                                   pairs=None, vocab=None, layers=None, ffn_dim=None)
        with torch.no_grad():  # a method's own weights (Linformer's E) need no graph here
            errors[method] = case_errors(case, case.instance(), q, k, v, reference="full",
                                         repeats=1)["error_spectral"]
    return errors


def _trees(count: int, n: int, seed: int) -> list:
    import random

    from attnbench.tasks.listops import expressions

    return expressions(count, n, random.Random(seed))


def majority(n: int) -> float:
    """The accuracy of always answering the commonest value (of 10000 training trees) on held-out trees."""
    from collections import Counter

    common = Counter(value for _, value in _trees(10000, n, 1)).most_common(1)[0][0]
    held_out = _trees(2000, n, 2)
    return sum(value == common for _, value in held_out) / len(held_out)


def root_operator(n: int) -> float:
    """The accuracy of answering, per root operator, its commonest value: what reading one token gives."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for tokens, value in _trees(10000, n, 1):
        counts.setdefault(tokens[0], Counter())[value] += 1
    held_out = _trees(2000, n, 2)
    return sum(counts[tokens[0]].most_common(1)[0][0] == value for tokens, value in held_out) / len(held_out)


def findings(name: str, points: dict[str, dict]) -> list[str]:
    lines = []
    if name.startswith("mqar") and "full" in points and set(LINEAR_AND_KERNEL) & set(points):
        others = ", ".join(f"{m} {100 * points[m]['accuracy']:.1f}%" for m in LINEAR_AND_KERNEL if m in points)
        lines.append(f"- Zoology's finding: full attention {100 * points['full']['accuracy']:.1f}%; linear and "
                     f"kernel methods {others}.")
    if name.startswith("listops"):
        n = next(iter(points.values()))["row"]["seq_len"]
        lines.append(f"- Majority class: {100 * majority(n):.1f}%; the root operator alone (its most common value "
                     f"in 10000 training trees): {100 * root_operator(n):.1f}% of the held-out trees.")
        for paper, column in PAPERS.items():
            common = [m for m in column if m in points]
            rho = spearman([points[m]["accuracy"] for m in common], [column[m] for m in common])
            lines.append(f"- Against {paper}'s ListOps column ({len(common)} methods in common): Spearman's rho "
                         f"{rho:.2f}.")
    if len(points) < 3:  # one or two methods rank nothing: their curves instead
        for method, p in points.items():
            curve = [point.split(":") for point in str(p["row"].get("train_curve") or "").split()]
            lines.append(f"- {method}, held-out accuracy along the training: " +
                         ", ".join(f"{100 * float(a):.1f}% at step {s}" for s, a, _ in curve) + ".")
        return lines
    errors = spectral_errors(points)
    names = [m for m in points if errors.get(m) is not None]
    x, y = [errors[m] for m in names], [points[m]["accuracy"] for m in names]
    low, high = interval(x, y)
    lines.append(f"- Spectral error on the task's q, k, v against accuracy ({len(names)} methods): Spearman's rho "
                 f"{spearman(x, y):.2f}, 95% interval [{low:.2f}, {high:.2f}]; errors: " +
                 ", ".join(f"{m} {errors[m]:.3g}" for m in sorted(names, key=errors.get)) + ".")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+")
    args = parser.parse_args()
    for report in args.reports:
        report_lines(report)


def report_lines(report: str) -> None:
    rows = load(report).rows
    print(f"# {report}\n")
    for name, group in settings(rows).items():
        points = method_points(group)
        budget = ", ".join(sorted({str(r.get("train_budget")) for r in group if r.get("train_budget")}))
        print(f"## {name} (budget {budget})\n")
        print("\n".join(table(group, points)), end="\n\n")
        print("\n".join(findings(name, points)), end="\n\n")


if __name__ == "__main__":
    main()
