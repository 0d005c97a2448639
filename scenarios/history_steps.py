"""How well `attnbench history` finds steps in timing series: the rate of false steps on flat
noisy series, and how often a 1.2x or 1.5x step is found within one commit of where it is.

Synthetic series (a median time per commit with log-normal noise, sigma 0.05 of the log time),
14 commits, the step at a random commit 4..10; 300 series each. Writes
reports/measured/history-steps.md. Usage: python scenarios/history_steps.py
"""

from __future__ import annotations

import random
from pathlib import Path

from attnbench.judge.history import PENALTY, change_points

SERIES, COMMITS, NOISE = 300, 14, 0.05


def rates() -> dict[str, float]:
    flat, found = 0, {1.2: 0, 1.5: 0}
    for seed in range(SERIES):
        rng = random.Random(seed)
        flat += bool(change_points([rng.lognormvariate(0, NOISE) for _ in range(COMMITS)], exact=False))
        at = rng.randint(4, 10)
        for scale in found:
            points = change_points([rng.lognormvariate(0, NOISE) * (scale if i >= at else 1)
                                    for i in range(COMMITS)], exact=False)
            found[scale] += len(points) == 1 and abs(points[0] - at) <= 1
    return {"false steps": flat / SERIES, **{f"{s}x found": n / SERIES for s, n in found.items()}}


def main() -> None:
    figures = rates()
    lines = ["# Change points on noisy timing series", "",
             f"`python scenarios/history_steps.py`: {SERIES} synthetic series of {COMMITS} commits, log-normal noise "
             f"of {NOISE:.0%} per commit, PELT on log times with the penalty {PENALTY:g} x noise^2 x log(n).", "",
             "| series | rate |", "|---|---|",
             f"| flat: a step reported (false step) | {figures['false steps']:.1%} |",
             f"| one 1.2x step: found, alone, within one commit | {figures['1.2x found']:.1%} |",
             f"| one 1.5x step: found, alone, within one commit | {figures['1.5x found']:.1%} |"]
    target = Path("reports/measured/history-steps.md")
    target.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
