"""Performance over commits: reports from successive commits joined on case identity, each case's
series per metric, and where a step change begins.

Every row carries `git_sha` and `timestamp`; a commit's value of a case is its row's (the median
over its rows when a commit was measured more than once), and commits are ordered by when their
rows ran. Reports that all come from one commit (runs of a working tree, measured before it is
committed) are a history too: each report is then a point, ordered by when its rows ran, and
`Series.by` says so. The metrics are the comparable ones (`attnbench.metrics`, by their compare policy's
column): for an exact metric (FLOPs, sparsity: `Exact`) any change is a step; for the others
the change points come from ruptures' PELT (optimal partitioning with a penalty, the family of
asv's step detection) on the logarithm of the series, with the penalty set by the series' own
noise (a robust estimate from successive differences), so a step must stand out of it. Each
step has its size and a 95% interval: an exact metric's ratio of the medians after and before;
for the others the ratio of the two segments' geometric means with the bootstrap compare uses
(attnbench.measure.bootstrap, each commit's value a group of its own).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from attnbench.errors import AttnbenchError
from attnbench.measure.machine import MACHINE

PENALTY = 8.0  # x noise variance x log(n): 1% false steps, 99% of 1.5x steps (scenarios/history_steps.py)


@dataclass(frozen=True)
class Step:
    index: int  # the first commit after the change
    ratio: float  # after / before: medians (exact metrics), else geometric means
    low: float
    high: float


@dataclass
class Series:
    label: str
    metric: str
    column: str
    exact: bool
    commits: list[str]  # the points: commits, or reports where every report comes from one commit
    values: list[float | None]
    steps: list[Step]
    by: str = "commit"  # or "report": the reports came from one commit, each is a point ordered by time


def _metric_columns(names: Sequence[str] | None) -> list[tuple[str, str, bool]]:
    from attnbench.metrics import all_metrics
    from attnbench.metrics.policies import Exact

    found = [(m.name, m.compare.column, isinstance(m.compare, Exact)) for m in all_metrics() if m.compare is not None]
    if names:
        unknown = sorted(set(names) - {name for name, _, _ in found})
        if unknown:
            raise AttnbenchError(f"--metrics takes {', '.join(n for n, _, _ in found)}, not {', '.join(unknown)}")
        found = [f for f in found if f[0] in names]
    return found


def change_points(values: Sequence[float], exact: bool) -> list[int]:
    """Indexes where a new level begins: for an exact metric every change; else PELT on log values."""
    if exact:
        return [i for i in range(1, len(values)) if values[i] != values[i - 1]]
    if len(values) < 3 or min(values) <= 0:
        return []
    import numpy as np
    import ruptures

    logs = np.log(np.asarray(values, dtype=float))
    noise = 1.4826 * float(np.median(np.abs(np.diff(logs)))) / math.sqrt(2)  # robust to the steps themselves
    noise = max(noise, 1e-3)  # a flat series: steps under 0.1% are not steps
    algorithm = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(logs.reshape(-1, 1))
    return [i for i in algorithm.predict(pen=PENALTY * noise ** 2 * math.log(len(values))) if i < len(values)]


def _steps(values: list[float], exact: bool) -> list[Step]:
    import numpy as np

    from attnbench.measure.bootstrap import ratio_interval

    points = change_points(values, exact)
    bounds = [0, *points, len(values)]
    steps = []
    for k, index in enumerate(points):
        before, after = values[bounds[k]:index], values[index:bounds[k + 2]]
        if exact:
            ratio = statistics.median(after) / statistics.median(before) if statistics.median(before) else math.inf
            low = high = ratio
        else:  # each commit's value a group of one: the ratio of the segments' geometric means
            ratio, low, high = ratio_interval([[v] for v in before], [[v] for v in after], np.random.default_rng(0))
        steps.append(Step(index, ratio, low, high))
    return steps


def history(paths: Sequence[str | Path], metrics: Sequence[str] | None = None,
            say=lambda line: None) -> list[Series]:
    """series_of the reports at these paths (each read once)."""
    from attnbench.results.report import load

    if len(paths) < 2:
        raise AttnbenchError("history needs at least two reports (of several commits, or runs of one)")
    return series_of([(str(path), load(path, say=lambda line: None).rows) for path in paths], metrics, say)


def series_of(reports: Sequence[tuple[str, list]], metrics: Sequence[str] | None = None,
              say=lambda line: None) -> list[Series]:
    """The series of every case and metric over the reports' commits (each report: its name and
    rows), with their steps; `say` gets a line when the reports come from different hardware."""
    from attnbench.results.schema import Labeller, setup_of

    if len(reports) < 2:
        raise AttnbenchError("history needs at least two reports (of several commits, or runs of one)")
    rows = [(name, row) for name, report_rows in reports for row in report_rows]
    for column in MACHINE:
        seen = {}
        for path, row in rows:
            if row.get(column):
                seen.setdefault(str(row[column]), path)
        if len(seen) > 1:
            say(f"Warning: the reports differ in {column} ({'; '.join(f'{v} in {p}' for v, p in seen.items())}): "
                 "time and memory steps may be the machines'")
    point_of, by = _points(rows, say)
    began: dict[str, str] = {}  # point -> when its first row ran
    for _, row in rows:
        point, when = point_of[id(row)], str(row.get("timestamp") or "")
        began[point] = min(began.get(point, when), when)
    commits = sorted(began, key=began.get)
    label = Labeller([r for _, r in rows])
    cases: dict = {}
    for _, row in rows:
        if row["status"] == "ok":
            identity = (setup_of(row), row["method"], tuple(sorted((k, str(v)) for k, v in row.items()
                                                                    if k.startswith("param_"))))
            cases.setdefault(identity, (label(row), {}))[1].setdefault(point_of[id(row)], []).append(row)
    out = []
    for name, column, exact in _metric_columns(metrics):
        for case_label, by_commit in cases.values():
            values = []
            for commit in commits:
                found = [r[column] for r in by_commit.get(commit, []) if isinstance(r.get(column), int | float)]
                values.append(statistics.median(found) if found else None)
            present = [(c, v) for c, v in zip(commits, values) if v is not None]
            if len(present) < 2:
                continue
            measured = [v for _, v in present]
            steps = _steps(measured, exact)
            out.append(Series(case_label, name, column, exact, [c for c, _ in present], measured, steps, by))
    return out


def _points(rows: list[tuple[str, dict]], say) -> tuple[dict[int, str], str]:
    """Each row's point of the history (keyed by id(row)): its commit (git_sha, else its report),
    or, where every row comes from one commit, its report; and "commit" or "report"."""
    commit = {id(row): str(row.get("git_sha") or path) for path, row in rows}
    if len(set(commit.values())) > 1:
        return commit, "commit"
    names = {path: Path(path).stem for path, _ in rows}
    if len(set(names.values())) < len(names):  # two reports of one name in different folders
        names = {path: path for path in names}
    reports = {id(row): names[path] for path, row in rows}
    if len(set(reports.values())) < 2:
        raise AttnbenchError("history needs at least two reports (of several commits, or runs of one)")
    say(f"The reports all come from one commit ({next(iter(commit.values()))[:12]}): each report is a point, "
        "ordered by when its rows ran")
    return reports, "report"


def history_rows(series: list[Series]) -> list[dict]:
    """Tidy rows: one per case, metric and commit; the steps on the commit where they begin."""
    rows = []
    for s in series:
        at = {step.index: step for step in s.steps}
        for i, (commit, value) in enumerate(zip(s.commits, s.values)):
            step = at.get(i)
            rows.append({"case": s.label, "metric": s.metric, "column": s.column, "commit_index": i,
                         # one commit's reports: each point is a report, named here instead of a commit
                         "git_sha": commit if s.by == "commit" else "", "report": commit if s.by == "report" else "",
                         "value": value, "change_point": step is not None,
                         "step_ratio": step.ratio if step else None, "step_ratio_low": step.low if step else None,
                         "step_ratio_high": step.high if step else None})
    return rows
