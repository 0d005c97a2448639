"""Compare two reports row by row and decide, per metric, whether NEW regressed against BASE.

Rows are joined on the case they measured (attnbench.plan.case.Case: method, parameters, shape and
set-up, by value). Each metric judges itself with the policy it declares, one of those below:
`Exact` (deterministic for a fixed seed: any change counts, more = slower), `Tolerance` (a
relative band with an absolute floor), `Bootstrap` (timing: an interval of the ratio from the
raw samples each row carries). `tolerances` and `floors` override a policy's relative threshold
and absolute floor by metric name. States per metric: same, faster, slower, ambiguous, lost (a value
BASE has and NEW lacks) and gained; rows only in BASE are 'missing', only in NEW 'new'. A confirmed
'slower' or a 'lost' value is a regression, and so is a row that was ok in BASE and failed in NEW.
A gate that compared nothing never passes: a metric asked for that a side lacks, a report with
two rows for one case, and reports that share no case are errors (exit 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from attnbench.errors import AttnbenchError, NothingToCompare
from attnbench.measure.machine import MACHINE
from attnbench.metrics import get_metric, metric_names
from attnbench.metrics.policies import Judgement, numeric, random_source
from attnbench.results.schema import IDENTITY, Labeller, text

# Columns that make times incomparable when they differ (how the time was taken included).
HARDWARE = (*MACHINE, "torch_version", "threads", "allocator", "time_l2", "time_cuda_graphs", "time_method")


# ---- comparing two reports ----

@dataclass
class RowComparison:
    label: str
    states: dict[str, str] = field(default_factory=dict)  # metric -> state
    details: dict[str, str] = field(default_factory=dict)  # metric -> "1.21x [1.15, 1.30]"
    presence: str = "both"  # both, missing (only in BASE), new (only in NEW)

    @property
    def regressed(self) -> bool:
        """A confirmed slowdown, a case that stopped finishing, or a value NEW no longer has."""
        return bool({"slower", "lost"} & set(self.states.values()))

    @property
    def verdict(self) -> str:
        """The row's one word: missing, new, regression, ambiguous, improved, unchanged or not compared
        (both sides ok, yet no metric had a value on both)."""
        if self.presence != "both":
            return self.presence
        states = set(self.states.values())
        for word, among in (("regression", {"slower", "lost"}), ("ambiguous", {"ambiguous"}),
                            ("improved", {"faster", "gained"})):
            if states & among:
                return word
        return "unchanged" if states else "not compared"


VERDICTS = ("regression", "improved", "ambiguous", "missing", "new", "unchanged", "not compared")


@dataclass
class Comparison:
    rows: list[RowComparison]
    hardware_differs: list[str]
    notes: list[str] = field(default_factory=list)  # what the chosen metrics' policies say about the reports
    metrics: tuple[str, ...] = ()  # the metrics judged (each present on both sides)

    @property
    def regressions(self) -> list[RowComparison]:
        return [r for r in self.rows if r.regressed]

    @property
    def missing(self) -> list[RowComparison]:
        return [r for r in self.rows if r.presence == "missing"]

    def count(self) -> dict[str, int]:
        """Rows per verdict, every verdict listed (zeros too)."""
        counts = dict.fromkeys(VERDICTS, 0)
        for row in self.rows:
            counts[row.verdict] += 1
        return counts

    @property
    def compared_nothing(self) -> bool:
        """No row had a metric or a status judged on both sides: a gate on this must not pass."""
        return not any(r.presence == "both" and r.verdict != "not compared" for r in self.rows)


def _differences(base_rows: list[dict], new_rows: list[dict]) -> str:
    """Which identity columns take different values in the two reports, e.g. 'threads (2 vs 3)'."""
    out = []
    columns = list(IDENTITY) + sorted({k for r in base_rows + new_rows for k in r if k.startswith("param_")})
    for column in columns:
        values = [sorted({text(r.get(column)) for r in rows}) for rows in (base_rows, new_rows)]
        if values[0] != values[1]:
            out.append(f"{column} ({', '.join(values[0][:4]) or '-'} vs {', '.join(values[1][:4]) or '-'})")
    return "; ".join(out[:4]) or "nothing in their identity columns (check the status column)"


def policies(metrics, tolerances: dict[str, float] | None = None, floors: dict[str, float] | None = None) -> dict:
    """Each metric's compare policy, with the thresholds the user overrode."""
    tolerances, floors = tolerances or {}, floors or {}
    for name in {*tolerances, *floors}:
        if name not in metric_names(comparable=True) or not get_metric(name).compare.tunable:
            tunable = [m for m in metric_names(comparable=True) if get_metric(m).compare.tunable]
            raise AttnbenchError(f"metric {name!r} has no threshold to set; thresholds exist for {', '.join(tunable)}")
    chosen = {}
    for name in metrics:
        policy = get_metric(name).compare
        changes = {k: v for k, v in (("rel", tolerances.get(name)), ("absolute", floors.get(name))) if v is not None}
        chosen[name] = dataclasses.replace(policy, **changes) if changes else policy
    return chosen


def by_case(rows: list, name: str) -> dict:
    """A report's rows keyed by the case they measured ('max_seq' summaries left out). Two rows
    for one case are an error: one would silently stand for both (an identity column deleted,
    a report appended to twice)."""
    keyed, twice = {}, {}
    for row in rows:
        if row["status"] == "max_seq":
            continue
        if row.case in keyed:
            twice.setdefault(row.case, row)
        keyed[row.case] = row
    if twice:
        label = Labeller(list(keyed.values()))
        shown = "; ".join(label(r) for r in list(twice.values())[:3])
        more = f" and {len(twice) - 3} more" if len(twice) > 3 else ""
        raise NothingToCompare(f"{name} holds more than one row for {len(twice)} case(s) ({shown}{more}); a report "
                               "needs one row per case: were identity columns deleted? keep one row per case")
    return keyed


def _present(rows: list, column: str) -> bool:
    return any(column in row for row in rows)


def _chosen_metrics(metrics, base_rows: list, new_rows: list, names: tuple[str, str]) -> tuple[tuple, list[str]]:
    """The metrics to judge, and notes on those left out. A metric asked for by name must be on both
    sides; by default every comparable metric both sides have, and one BASE has that NEW lost is
    judged anyway, so that each of its rows says 'lost'."""
    sides = list(zip(names, (base_rows, new_rows)))
    if metrics:
        for name in metrics:
            column = get_metric(name).compare.column
            lacking = [side for side, rows in sides if not _present(rows, column)]
            if lacking:
                both = [m for m in metric_names(comparable=True)
                        if all(_present(rows, get_metric(m).compare.column) for _, rows in sides)]
                verb = "have" if len(lacking) > 1 else "has"
                raise NothingToCompare(f"{' and '.join(lacking)} {verb} no {column} column, so metric {name!r} "
                                       f"cannot be compared; choose with --metrics among those both reports "
                                       f"have: {', '.join(both) or 'none'}")
        return tuple(metrics), []
    chosen, notes = [], []
    for name in metric_names(comparable=True):
        column = get_metric(name).compare.column
        has = [_present(rows, column) for _, rows in sides]
        if has[0]:
            chosen.append(name)
        elif has[1]:
            notes.append(f"Note: only {names[1]} has metric {name!r} ({column}); it is not compared")
    if not chosen:
        raise NothingToCompare(f"{names[0]} has no column of a comparable metric "
                               f"({', '.join(metric_names(comparable=True))}): there is nothing to compare")
    return tuple(chosen), notes


def _judge_row(base, new, judges: dict, context: Judgement, result: RowComparison) -> None:
    if base["status"] != new["status"]:
        result.states["status"] = "slower" if base["status"] == "ok" else "faster"
        result.details["status"] = f"{base['status']} -> {new['status']}"
        return
    if base["status"] != "ok":  # one failure on both sides (unsupported, oom...): judged by the status
        result.states["status"] = "same"
        return
    for name, policy in judges.items():
        had, has = numeric(base, policy.column) is not None, numeric(new, policy.column) is not None
        if had != has:
            result.states[name] = "lost" if had else "gained"
            result.details[name] = f"no {policy.column} in {'NEW' if had else 'BASE'}"
            continue
        verdict = policy.judge(base, new, context) if had else None
        if verdict:
            result.states[name], result.details[name] = verdict


def compare_rows(base_rows: list, new_rows: list, metrics=None, *, names: tuple[str, str] = ("BASE", "NEW"),
                 tolerances: dict[str, float] | None = None, floors: dict[str, float] | None = None,
                 seed: int = 0, allow_disjoint: bool = False) -> Comparison:
    """Join two reports' rows (attnbench.results.schema.Row, as attnbench.results.report.load gives them) on their
    cases and judge each metric in `metrics` (default: every comparable metric BASE has). A metric
    named in `metrics` that a side lacks, a report with two rows for one case, and two reports
    that share no case (unless `allow_disjoint`) are errors: such a gate would judge nothing."""
    chosen, notes = _chosen_metrics(metrics, base_rows, new_rows, names)
    judges = policies(chosen, tolerances, floors)
    base_by_case, new_by_case = by_case(base_rows, names[0]), by_case(new_rows, names[1])
    if not allow_disjoint and not set(base_by_case) & set(new_by_case):
        raise NothingToCompare(f"{names[0]} and {names[1]} share no case: they differ in "
                               f"{_differences(base_rows, new_rows)}; pass --allow-disjoint to list them anyway")
    label = Labeller([*base_by_case.values(), *new_by_case.values()])
    context = Judgement(random_source(seed))
    out = []
    for case in list(base_by_case) + [c for c in new_by_case if c not in base_by_case]:
        base, new = base_by_case.get(case), new_by_case.get(case)
        result = RowComparison(label(base or new))
        if new is None or base is None:
            result.presence = "missing" if new is None else "new"
        else:
            _judge_row(base, new, judges, context, result)
        out.append(result)
    differs = [c for c in HARDWARE if base_rows and new_rows and c in base_rows[0] and c in new_rows[0]
               and {text(r[c]) for r in base_rows} != {text(r[c]) for r in new_rows}]
    reports = list(zip(names, (base_rows, new_rows)))
    notes += [line for policy in judges.values() for line in policy.notes(reports)]
    return Comparison(out, differs, notes, chosen)


def compare_reports(base_path: str | Path, new_path: str | Path, metrics=None, **options) -> Comparison:
    """compare_rows on two report files (each read once, with its samples sidecar)."""
    from attnbench.results.report import load

    base, new = load(base_path, complete=True).rows, load(new_path, complete=True).rows
    return compare_rows(base, new, metrics, names=(str(base_path), str(new_path)), **options)
