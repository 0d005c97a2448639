"""The row schema: every column of a report, its type, what identifies a case, one row builder.

A row is, in order: the case's identity (method, param_<name>..., then the set-up fields of
`Case`), its status and status_detail, the method's analytic figures, every registered metric's
columns, the method's own extra columns, a timestamp, and the environment it ran in. A measured
case and a failure row (a worker that died, a time-out) are built by the same `new_row`, so
every report has the same columns whatever happened and whichever metrics were chosen.

A `Row` is a dict of those columns plus its timing record, `samples` (the raw samples, one list
per process), which the report keeps in its sidecar, not in a column. Every column has one type
(`column_type`): the writer writes Python values, and the one reader (attnbench.results.report.load)
turns the text back into them, so a value means the same whether it was just measured or read
back from a CSV, by us or after pandas saved it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Iterable

from attnbench.measure.machine import ENVIRONMENT
from attnbench.metrics import column_types, result_columns
from attnbench.plan.case import SETUP, Case

# case_seconds: wall time of the whole case where it ran; build_ms: the method's build (weights,
# masks, landmarks, block masks), or the network's at layer/model scope; compile_s: the first call
# under torch.compile (--compile), which the timing leaves out.
CORE = ("status", "status_detail", "case_seconds", "build_ms", "compile_s", "kernel_compile_mode", "grouped_kv")
ANALYTIC = ("flops_analytic", "scores_computed", "peak_mem_analytic_bytes", "bytes_moved_analytic",
            "cache_bytes")  # formulas
PROVENANCE = ("method_source", "method_version", "method_git_sha")  # whose code the method is
IDENTITY = ("method", "seq_len", *SETUP)  # plus a param_<name> column per method parameter
# Columns every attnbench report has had since the first one; later ones default to Case's values.
REQUIRED = ("method", "seq_len", "status", "batch", "heads", "head_dim", "dtype", "device", "mode", "seed")

# What each column of the fixed part of a row holds (docs/columns.md is generated from these, the
# metrics' column_help and the methods' column_help).
COLUMN_HELP: dict[str, str] = {
    "method": "the registered method name (or module:Class)",
    "param_<name>": "each parameter of the method, defaults included (blank for methods without it)",
    "batch": "q, k, v are (batch, heads, seq_len, head_dim)", "heads": "attention heads",
    "seq_len": "the sequence length n", "head_dim": "dimension per head", "dtype": "the inputs' and method's dtype",
    "device": "cpu, cuda or cuda:N", "mode": "forward, backward (forward + backward) or train (an optimizer step)",
    "scope": "attention (the bare op), layer (an encoder layer), model (the LRA encoder) or swap (a Hugging Face "
             "model with the method in place of its attention: attnbench swap)",
    "layers": "layer/model scope: encoder layers", "ffn_dim": "layer/model scope: FFN hidden width",
    "vocab": "model scope: token vocabulary", "task": "a scenario's task label (e.g. an LRA task)",
    "train_task": "attnbench train: the generated task the model learned (mqar, mqar-bidirectional, listops); blank "
                  "otherwise",
    "pairs": "MQAR: key-value pairs per example",
    "seed": "seeds the inputs and every draw of the method", "threads": "CPU threads of the measured calls",
    "inputs": "random, pretrained or init q, k, v, or capture:FILE (attnbench capture); swap scope: the tokens "
              "(text:FILE, text:bundled, or ids: seeded random ids)",
    "input_scale": "standard deviation of random inputs",
    "layer": "pretrained/init/capture inputs: the model layer", "compile": "off, or the torch.compile mode",
    "model": "capture inputs and swap scope: the Hugging Face model (a local folder, a config.json, or minilm)",
    "capture": "capture inputs: the SHA-256 of the capture file (its first 16 hex digits)",
    "swap_layers": "swap scope: the layers whose attention the method replaced (all, or a comma list)",
    "revision": "attnbench ab: the side of the code under test that ran the row (its revision and commit, or its "
                "Python); blank otherwise",
    "amp": "layer/model scope: off, or the autocast dtype over float32 weights (bfloat16, float16 with a GradScaler)",
    "stage": "attnbench profile: the stage of the method the row's profile_* figures are for ('other': what ran "
             "outside every stage); blank: the whole call, with every metric's columns",
    "status": "ok, oom, nan, unsupported, error, timeout, crashed, or max_seq (--find-max-seq's summary row)",
    "status_detail": "why a case is not ok (one line)",
    "case_seconds": "wall time of the whole case where it ran (inputs, warm-up, every pass; summed over processes)",
    "build_ms": "the method's build (weights, masks, landmarks), or the network's at layer/model scope, ms",
    "compile_s": "the first call when it compiles (--compile, FlexAttention), left out of the timing",
    "kernel_compile_mode": "the torch.compile mode of a method's own compiled kernel (FlexAttention: "
                           "default, max-autotune-no-cudagraphs where flex's autotune asks on CUDA); empty for others",
    "kv_heads": "key/value heads (grouped-query attention); blank: one per query head",
    "q_seq_len": "queries, the last positions of seq_len keys (decoding against a KV cache); blank: seq_len",
    "causal": "whether each query attends only the keys at or before its position (bottom-right aligned)",
    "window": "the sliding window: each query sees the keys within W positions (causal: the W up to its own); "
              "blank: none",
    "sinks": "with a window: the first keys of each document every query sees too (attention sinks)",
    "documents": "documents packed into the sequence (a block-diagonal mask); blank: one",
    "doc_lengths": "their lengths, joined by +",
    "softcap": "logit soft-capping C: scores s become tanh(s / C) * C; blank: none",
    "cache": "what a decode step reads for the keys before its block: kv (cached keys and values) or state (a "
             "recurrent state built from them before the timed step)",
    "cache_bytes": "decode (--q-seq, attention scope): the bytes of that cache, the k and v of the positions "
                   "before the block (kv) or the method's recurrent state (state)",
    "grouped_kv": "with fewer kv heads: native (the kernel takes the smaller k, v) or repeated (k, v repeated to "
                  "every query head inside the call, as a model without a grouped kernel does); blank otherwise",
    "flops_analytic": "the method's FLOP formula for the case (multiply-add = 2; backward included)",
    "scores_computed": "query-key scores the method computes per attention call (its formula or its draw)",
    "peak_mem_analytic_bytes": "the method's formula for the bytes it keeps alive at its peak",
    "bytes_moved_analytic": "the method's formula for the bytes it must read and write",
    "timestamp": "when the case ended",
    "method_source": "the file of the method's module", "method_version": "the version of the package that ships it",
    "method_git_sha": "the commit of the git work tree it sits in ('+dirty' with local edits)",
    "attnbench_version": "attnbench's version", "git_sha": "attnbench's commit", "torch_version": "torch's version",
    "python_version": "Python's version", "hostname": "the machine", "cpu_model": "the CPU", "cpu_count": "CPU cores",
    "allocator": "the CPU allocator policy (cache or system)", "malloc_env": "the MALLOC_* variables in force",
    "ld_preload": "LD_PRELOAD", "device_name": "the device's name (the CPU's on cpu)",
    "cuda_version": "CUDA's version (cuda)", "tf32_matmul": "TF32 matmuls allowed (cuda)",
    "gpu_name": "NVML's name of the GPU",
    "gpu_uuid": "the GPU board that ran the case (CUDA's UUID; on Ray, the task's GPU)",
    "gpu_driver": "the NVIDIA driver", "gpu_memory_bytes": "the GPU's memory",
    "gpu_sm_clock_mhz": "its SM clock when the row was stamped", "gpu_max_sm_clock_mhz": "its maximum SM clock",
}

_FIXED: dict[str, type] = {
    "status": str, "status_detail": str, "kernel_compile_mode": str, "grouped_kv": str, "timestamp": str,
    **dict.fromkeys(PROVENANCE, str),
    **dict.fromkeys(ENVIRONMENT, str), "cpu_count": int, "tf32_matmul": bool, "gpu_memory_bytes": int,
    "gpu_sm_clock_mhz": int, "gpu_max_sm_clock_mhz": int,
}


def _identity_types() -> dict[str, type]:
    hints = typing.get_type_hints(Case)
    out = {}
    for name in IDENTITY:
        kinds = [k for k in typing.get_args(hints[name]) if k is not type(None)] or [hints[name]]
        out[name] = kinds[0]
    return out


def column_type(column: str) -> type | None:
    """The type of a column's values (None: a method's parameter or own column, typed by its value)."""
    if column in _IDENTITY_TYPES:
        return _IDENTITY_TYPES[column]
    if column in _FIXED:
        return _FIXED[column]
    if column in CORE or column in ANALYTIC:
        return float
    return column_types().get(column)


def convert(text: str | None, kind: type | None) -> Any:
    """A CSV cell as a value of `kind`: blank and NaN are None; a cell that is not of its column's
    type (a newer report's value, 'unavailable' in a count) stays the text it is. `kind` None
    types the cell by its value: a bool, a whole number, a number, else text."""
    if text is None:
        return None
    text = str(text)
    if text.strip() in ("", "nan", "NaN"):
        return None
    if kind is str:
        return text
    low = text.strip().lower()
    if kind in (bool, None) and low in ("true", "false"):
        return low == "true"
    if kind is bool:
        return {"1": True, "0": False, "1.0": True, "0.0": False}.get(low, text)
    try:
        if kind in (int, None):
            try:
                return int(text)
            except ValueError:
                number = float(text)
                return int(number) if kind is int and number.is_integer() else number
        return float(text)
    except (ValueError, OverflowError):
        return text


class Row(dict):
    """A report row: its columns, its timing record (`samples`: raw samples in ms, one list per
    process that measured them; None for a row with no timing) and, for a profiled case, the
    columns of its stages' rows (`stages`: one dict each; None when it was not profiled)."""

    def __init__(self, *args: Any, samples: list[list[float]] | None = None,
                 stages: list[dict] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.samples, self.stages = samples, stages

    def __reduce__(self):  # rows cross process boundaries (workers, Ray) with their samples and stages
        return (_rebuild_row, (dict(self), self.samples, self.stages))

    @property
    def case(self) -> Case:
        return Case.of(self)


def _rebuild_row(columns: dict, samples: list[list[float]] | None, stages: list[dict] | None = None) -> Row:
    return Row(columns, samples=samples, stages=stages)


def stage_rows(row: Row) -> list[Row]:
    """The rows of a profiled case's stages (attnbench profile): every column of the case's row,
    blank but for its identity (under the stage's name), status, provenance and environment, and
    the stage's own columns; none for a case that was not profiled."""
    kept = ("status", "timestamp", *PROVENANCE, *ENVIRONMENT)
    rows = []
    for stage in row.stages or ():
        out = Row(dict.fromkeys(row))  # the report's columns, in its order
        out.update({column: value for column, value in row.items()
                    if column in _IDENTITY_TYPES or column.startswith("param_") or column in kept})
        out.update(stage)  # "stage" and its figures
        rows.append(out)
    return rows


def identity(case: Case) -> Row:
    """The identity half of a row: method, param_<name>, shape and set-up."""
    return Row({"method": case.method, **{f"param_{k}": v for k, v in case.params.items()},
                "batch": case.batch, "heads": case.heads, "seq_len": case.seq_len, "head_dim": case.head_dim,
                **{k: getattr(case, k) for k in SETUP if k not in ("batch", "heads", "head_dim")}})


def _extra_columns(case: Case) -> tuple[str, ...]:
    from attnbench.methods.registry import get_method

    return get_method(case.method).extra_columns


def columns_for(cases: Iterable[Case]) -> list[str]:
    """Every column the rows of these cases will have, in report order."""
    cases = list(cases)
    ident = dict.fromkeys(c for case in cases for c in identity(case))
    extras = dict.fromkeys(c for case in cases for c in _extra_columns(case))
    return [*ident, *CORE, *ANALYTIC, *result_columns(), *extras, "timestamp", *PROVENANCE, *ENVIRONMENT]


def new_row(case: Case) -> Row:
    """A row with the case's identity and every other column empty."""
    blank = [*CORE, *ANALYTIC, *result_columns(), *_extra_columns(case), "timestamp", *PROVENANCE, *ENVIRONMENT]
    row = identity(case)
    row.update(dict.fromkeys(blank))
    return row


def setup_of(row: dict) -> Case:
    """What a row shares with the rows it is compared to: its case without the method and its
    parameters (shape, dtype, device, mode, scope, task, ...)."""
    return dataclasses.replace(Case.of(row), method="", params={})


# ---- one name for a case, everywhere ----

def text(value: object) -> str:
    """A value as a label shows it: blank for None, 0.01 for 0.01, 128 for 128 or 128.0."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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
                if key.startswith("param_") and text(value):
                    seen.setdefault(row["method"], {}).setdefault(key, set()).add(text(value))
        self.varying_params = {m: [k for k, values in params.items() if len(values) > 1] for m, params in seen.items()}
        # doc_lengths goes with documents (their count), which names it well enough
        self.varying_setup = [k for k in SETUP if k != "doc_lengths" and len({text(r.get(k)) for r in rows}) > 1]

    def __call__(self, row: dict) -> str:
        parts = [str(row["method"])]
        parts += [f"{k.removeprefix('param_')}={text(row.get(k))}" for k in self.varying_params.get(row["method"], [])
                  if text(row.get(k))]
        # a blank value is the default (the whole call, one document, no window): nothing to say
        parts += [f"{k}={text(row.get(k))}" for k in self.varying_setup if text(row.get(k))]
        if self.with_length:
            parts.append(f"n={text(row.get('seq_len'))}")
        return " ".join(parts)


_IDENTITY_TYPES = _identity_types()
