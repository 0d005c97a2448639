"""What a training report says (attnbench train), as lines: per task setting, each method's
held-out accuracy (median over seeds, and their range), the training time and one step's peak
memory it cost, and whether it is on the Pareto front of accuracy against time."""

from __future__ import annotations

import statistics

from attnbench.metrics.display import fmt_bytes
from attnbench.metrics.policies import numeric
from attnbench.results.schema import Labeller


def _setting(row: dict) -> str:
    """'mqar n=64 pairs=8 vocab=128' (MQAR's vocabulary is a choice; ListOps' is its grammar's)."""
    pairs = f" pairs={row['pairs']} vocab={row.get('vocab')}" if row.get("pairs") not in (None, "") else ""
    return f"{row['train_task']} n={row['seq_len']}{pairs}"


def _median(rows: list[dict], column: str) -> float | None:
    values = [v for r in rows if (v := numeric(r, column)) is not None]
    return statistics.median(values) if values else None


def on_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """The names whose (cost, accuracy) no other point matches at a cost as low or lower."""
    kept, best = set(), float("-inf")
    for name, (_, accuracy) in sorted(points.items(), key=lambda item: (item[1][0], -item[1][1])):
        if accuracy > best:
            kept.add(name)
            best = accuracy
    return kept


def training_lines(rows: list[dict]) -> list[str]:
    """Per task setting, a line per case series (seeds pooled), best accuracy first."""
    trained = [r for r in rows if r.get("status") == "ok" and numeric(r, "test_accuracy") is not None]
    if not trained:
        return []
    by_setting: dict[str, list[dict]] = {}
    for row in trained:
        by_setting.setdefault(_setting(row), []).append(row)
    settings: dict[str, dict[str, list[dict]]] = {}
    for setting, group in by_setting.items():
        unseeded = [{k: v for k, v in r.items() if k != "seed"} for r in group]
        label = Labeller(unseeded, with_length=False)  # what tells this setting's series apart
        for row, bare in zip(group, unseeded):
            settings.setdefault(setting, {}).setdefault(label(bare), []).append(row)
    lines = []
    for setting, series in settings.items():
        budget = {r.get("train_budget") for group in series.values() for r in group}
        lines.append(f"{setting} (budget {', '.join(sorted(b for b in budget if b))}): held-out accuracy, median "
                     "over seeds [range]; training time; peak memory of a step")
        points = {name: (_median(group, "train_s"), _median(group, "test_accuracy")) for name, group in series.items()}
        front = on_front({n: p for n, p in points.items() if p[0] is not None})
        for name, group in sorted(series.items(), key=lambda item: -points[item[0]][1]):
            accuracies = [numeric(r, "test_accuracy") for r in group]
            spread = f" [{100 * min(accuracies):.1f}-{100 * max(accuracies):.1f}]" if len(group) > 1 else ""
            seconds, memory = points[name][0], _median(group, "peak_mem_bytes")
            lines.append(f"  {name}: {100 * points[name][1]:.1f}%{spread} over {len(group)} seed(s); "
                         f"{'-' if seconds is None else f'{seconds:.1f} s'}; {fmt_bytes(memory)}"
                         f"{'; on the front' if name in front else ''}")
    return lines
