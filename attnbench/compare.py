"""Compare two reports row by row and decide, per metric, whether NEW regressed against BASE.

Rows are joined on their identity (attnbench.schema.row_key: method, parameters, shape and
set-up, compared by value). Each metric judges itself with the policy it declares
(attnbench.metric: Exact, Tolerance, Bootstrap); `tolerances` and `floors` override a policy's
relative threshold and absolute floor by metric name. States per metric: same, faster, slower,
ambiguous; rows only in BASE are 'missing', only in NEW 'new'. A confirmed 'slower' on any metric
is a regression, and so is a row that was ok in BASE and failed in NEW.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from attnbench.errors import AttnbenchError, NothingToCompare
from attnbench.metric import Judgement, get_metric, metric_names, number, random_source
from attnbench.report import read_samples, sidecar_path
from attnbench.schema import IDENTITY, REQUIRED, Labeller, row_key

# Columns that make times incomparable when they differ (how the time was taken included).
HARDWARE = ("cpu_model", "device_name", "gpu_name", "torch_version", "threads", "allocator", "time_l2",
            "time_cuda_graphs")


@dataclass
class RowComparison:
    label: str
    states: dict[str, str] = field(default_factory=dict)  # metric -> state
    details: dict[str, str] = field(default_factory=dict)  # metric -> "1.21x [1.15, 1.30]"
    presence: str = "both"  # both, missing (only in BASE), new (only in NEW)

    @property
    def regressed(self) -> bool:
        return "slower" in self.states.values()


@dataclass
class Comparison:
    rows: list[RowComparison]
    hardware_differs: list[str]
    without_samples: list[str] = field(default_factory=list)  # reports whose time had no raw samples
    one_process: list[str] = field(default_factory=list)  # reports with a case timed in one process only

    @property
    def regressions(self) -> list[RowComparison]:
        return [r for r in self.rows if r.regressed]

    @property
    def missing(self) -> list[RowComparison]:
        return [r for r in self.rows if r.presence == "missing"]


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        raise AttnbenchError(f"report {path} does not exist; give the CSV written by 'attnbench run' or 'sweep'")
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AttnbenchError(f"cannot read report {path}: {exc}") from None
    if not rows or not {"method", "seq_len", "status"} <= set(rows[0]):
        raise AttnbenchError(f"{path} is not an attnbench report (no rows, or no method/seq_len/status columns)")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise AttnbenchError(f"{path} lacks the attnbench columns {', '.join(missing)}; compare reports written by "
                             "'attnbench run' or 'sweep' (a filtered copy must keep every column)")
    return rows


def _differences(base_rows: list[dict], new_rows: list[dict]) -> str:
    """Which identity columns take different values in the two reports, e.g. 'threads (2 vs 3)'."""
    out = []
    columns = list(IDENTITY) + sorted({k for r in base_rows + new_rows for k in r if k.startswith("param_")})
    for column in columns:
        values = [sorted({str(r.get(column, "")) for r in rows}, key=str) for rows in (base_rows, new_rows)]
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


def compare_reports(base_path: str | Path, new_path: str | Path, metrics=None, *,
                    tolerances: dict[str, float] | None = None, floors: dict[str, float] | None = None,
                    seed: int = 0, allow_disjoint: bool = False) -> Comparison:
    """Join BASE and NEW on their row keys and judge every metric in `metrics` (default: all).
    Two reports that share no case are an error unless `allow_disjoint`."""
    judges = policies(metrics or metric_names(comparable=True), tolerances, floors)
    base_rows, new_rows = _load(Path(base_path)), _load(Path(new_path))
    base_samples, new_samples = read_samples(base_path), read_samples(new_path)
    base_by_key = {row_key(r): r for r in base_rows if r["status"] != "max_seq"}
    new_by_key = {row_key(r): r for r in new_rows if r["status"] != "max_seq"}
    if not allow_disjoint and not set(base_by_key) & set(new_by_key):
        raise NothingToCompare(f"{base_path} and {new_path} share no case: they differ in "
                               f"{_differences(base_rows, new_rows)}; pass --allow-disjoint to list them anyway")
    label = Labeller([*base_by_key.values(), *new_by_key.values()])
    rng = random_source(seed)
    out = []
    for key in list(base_by_key) + [k for k in new_by_key if k not in base_by_key]:
        base, new = base_by_key.get(key), new_by_key.get(key)
        result = RowComparison(label(base or new))
        if new is None or base is None:
            result.presence = "missing" if new is None else "new"
        elif base["status"] != new["status"]:
            result.states["status"] = "slower" if base["status"] == "ok" else "faster"
            result.details["status"] = f"{base['status']} -> {new['status']}"
        else:
            context = Judgement(base_samples.get(key), new_samples.get(key), rng)
            for name, policy in judges.items():
                verdict = policy.judge(base, new, context)
                if verdict:
                    result.states[name], result.details[name] = verdict
        out.append(result)
    differs = [c for c in HARDWARE if c in base_rows[0] and c in new_rows[0]
               and {r[c] for r in base_rows} != {r[c] for r in new_rows}]
    no_samples = [str(path) for path in (base_path, new_path) if not sidecar_path(path).is_file()]
    if "time" not in judges:
        return Comparison(out, differs)
    one_process = [str(path) for path, rows, samples in ((base_path, base_rows, base_samples),
                                                         (new_path, new_rows, new_samples))
                   if any(_timed_in_one_process(r, samples) for r in rows)]
    return Comparison(out, differs, no_samples, one_process)


def _timed_in_one_process(row: dict, samples: dict) -> bool:
    if row.get("status") != "ok" or number(row, "time_ms_median") is None:
        return False
    groups = samples.get(row_key(row))
    return len(groups) < 2 if groups else (number(row, "time_processes") or 1) < 2
