"""The row schema: every column of a report, what identifies a case, and one row builder.

A row is, in order: the case's identity (method, param_<name>..., then the set-up fields of
`Case`), its status and status_detail, the method's analytic figures, every registered metric's
columns, the method's own extra columns, a timestamp, and the environment it ran in. A measured
case and a failure row (a worker that died, a time-out) are built by the same `new_row`, so
every report has the same columns whatever happened and whichever metrics were chosen.
"""

from __future__ import annotations

import time
from typing import Iterable

from attnbench.case import SETUP, Case
from attnbench.metric import result_columns

# case_seconds: wall time of the whole case where it ran; build_ms: the method's build (weights,
# masks, landmarks, block masks), or the network's at layer/model scope; compile_s: the first call
# under torch.compile (--compile), which the timing leaves out.
CORE = ("status", "status_detail", "case_seconds", "build_ms", "compile_s")
ANALYTIC = ("flops_analytic", "scores_computed", "peak_mem_analytic_bytes", "bytes_moved_analytic")  # formulas
ENVIRONMENT = (
    "attnbench_version", "git_sha", "torch_version", "python_version", "hostname", "cpu_model", "cpu_count",
    "allocator", "malloc_env", "ld_preload", "device_name", "cuda_version", "tf32_matmul",
    "gpu_name", "gpu_driver", "gpu_memory_bytes", "gpu_sm_clock_mhz", "gpu_max_sm_clock_mhz",
)
PROVENANCE = ("method_source", "method_version", "method_git_sha")  # whose code the method is
IDENTITY = ("method", "seq_len", *SETUP)  # plus a param_<name> column per method parameter
# Columns every attnbench report has had since the first one; later ones default to Case's values.
REQUIRED = ("method", "seq_len", "status", "batch", "heads", "head_dim", "dtype", "device", "mode", "seed")


def identity(case: Case) -> dict:
    """The identity half of a row: method, param_<name>, shape and set-up."""
    return {"method": case.method, **{f"param_{k}": v for k, v in case.params.items()},
            "batch": case.batch, "heads": case.heads, "seq_len": case.seq_len, "head_dim": case.head_dim,
            **{k: getattr(case, k) for k in SETUP if k not in ("batch", "heads", "head_dim")}}


def _extra_columns(case: Case) -> tuple[str, ...]:
    from attnbench.registry import get_method

    return get_method(case.method).extra_columns


def columns_for(cases: Iterable[Case]) -> list[str]:
    """Every column the rows of these cases will have, in report order."""
    cases = list(cases)
    ident = dict.fromkeys(c for case in cases for c in identity(case))
    extras = dict.fromkeys(c for case in cases for c in _extra_columns(case))
    return [*ident, *CORE, *ANALYTIC, *result_columns(), *extras, "timestamp", *PROVENANCE, *ENVIRONMENT]


def new_row(case: Case) -> dict:
    """A row with the case's identity and every other column empty."""
    blank = [*CORE, *ANALYTIC, *result_columns(), *_extra_columns(case), "timestamp", *PROVENANCE, *ENVIRONMENT]
    return {**identity(case), **dict.fromkeys(blank)}


def stamp(row: dict, case: Case) -> dict:
    """Close a row: when it ended, whose code the method is and the environment it ran in."""
    from attnbench.env import environment, method_provenance

    row["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    row.update(method_provenance(case.method))
    row.update(environment(case.device))
    return row


def failure_row(case: Case, status: str, detail: str) -> dict:
    """A row for a case that produced no measurement (its worker died, it ran out of time...)."""
    row = new_row(case)
    row.update(status=status, status_detail=detail)
    return stamp(row, case)


# ---- identity by value ----

def _canonical(value: object) -> object:
    """One spelling per value: 128, '128', 128.0 and '128.0' are 128; blanks and NaN are None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() else float(value)
    text = str(value).strip()
    if text in ("", "nan", "NaN", "None"):
        return None
    if text in ("True", "true", "False", "false"):
        return text.lower() == "true"
    try:
        return _canonical(float(text))
    except ValueError:
        return text


def _setup(row: dict, column: str) -> object:
    """A row's identity value; a column an older report lacks counts as Case's default."""
    return row[column] if column in row else getattr(Case, column, None)


def row_key(row: dict) -> tuple:
    """What identifies a case in a report, compared by value: method, parameters, shape and
    set-up."""
    fixed = tuple(_canonical(_setup(row, k)) for k in IDENTITY)
    params = tuple(sorted((k, _canonical(v)) for k, v in row.items()
                          if k.startswith("param_") and _canonical(v) is not None))
    return fixed + params


def context_key(row: dict) -> tuple:
    """The set-up a row shares with the rows it is compared to: its identity without the method and
    its parameters (shape, dtype, device, mode, scope, task, ...)."""
    return tuple(_canonical(_setup(row, k)) for k in IDENTITY if k != "method")


# ---- one name for a case, everywhere ----

def _text(value: object) -> str:
    value = _canonical(value)
    return "" if value is None else str(value)


class Labeller:
    """Names cases as 'method p=v ...', showing only what tells the given rows apart: the
    parameters that vary among a method's own rows, and the set-up values that vary across all
    rows. The table, the progress line, compare and the plots all name cases with it."""

    def __init__(self, rows: Iterable[dict], *, with_length: bool = True) -> None:
        rows = list(rows)
        self.with_length = with_length
        seen: dict[str, dict[str, set[str]]] = {}  # method -> parameter column -> values
        for row in rows:
            for key, value in row.items():
                if key.startswith("param_") and _text(value):
                    seen.setdefault(row["method"], {}).setdefault(key, set()).add(_text(value))
        self.varying_params = {m: [k for k, values in params.items() if len(values) > 1] for m, params in seen.items()}
        self.varying_setup = [k for k in SETUP if len({_text(_setup(r, k)) for r in rows}) > 1]

    def __call__(self, row: dict) -> str:
        parts = [str(row["method"])]
        parts += [f"{k.removeprefix('param_')}={_text(row.get(k))}" for k in self.varying_params.get(row["method"], [])
                  if _text(row.get(k))]
        parts += [f"{k}={_text(_setup(row, k))}" for k in self.varying_setup]
        if self.with_length:
            parts.append(f"n={_text(row.get('seq_len'))}")
        return " ".join(parts)
