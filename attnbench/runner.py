"""Run cases: build inputs, then measure FLOPs, memory and time, each in its own pass.

The passes disturb each other (a dispatch mode and the profiler slow every op), so each runs
the same call separately, after a warm-up call that also checks the output is finite. A failing
case becomes a row with a status ('oom', 'nan', 'unsupported', 'error') and the run goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

from attnbench.case import Case
from attnbench.options import METRICS
from attnbench.env import environment
from attnbench.measure.flops import count_flops, fvcore_flops
from attnbench.measure.memory import peak_bytes
from attnbench.measure.timing import matmul_peak_flops_per_s, time_call
from attnbench.registry import get_method

FLOPS_TOLERANCE = 0.10  # counted vs analytic beyond this is flagged in the row

RESULT_COLUMNS = (
    "status", "error", "time_ms_median", "time_ms_iqr", "time_samples", "time_calls_per_sample",
    "time_noisy", "flops", "flops_analytic", "flops_mismatch", "flops_fvcore", "flops_fvcore_skipped",
    "flops_by_op", "peak_mem_bytes", "peak_mem_analytic_bytes", "sparsity", "scores_computed",
    "achieved_flops_per_s", "machine_matmul_flops_per_s", "machine_peak_fraction", "timestamp",
)


@dataclass(frozen=True)
class Settings:
    """How to measure: which passes run and the time budget of the timing pass."""

    metrics: tuple[str, ...] = METRICS
    min_time_s: float = 0.5  # timing runs at least this long, then stops once IQR/median < 10%
    max_time_s: float = 5.0  # ... or when this much time was spent measuring


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """Seeded standard-normal q, k, v (drawn on the CPU so every device sees the same values)."""
    generator = torch.Generator().manual_seed(case.seed)
    dims = (case.batch, case.heads, case.seq_len, case.head_dim)
    q, k, v = (torch.randn(dims, generator=generator).to(case.device, getattr(torch, case.dtype))
               for _ in range(3))
    return q, k, v, generator


def make_call(fn: Callable, q, k, v, mode: str) -> Callable[[], object]:
    """A zero-argument call: forward under no_grad, or forward + backward to every input."""
    if mode == "forward":
        def forward():
            with torch.no_grad():
                return fn(q, k, v)
        return forward
    weights = [p for p in fn.parameters() if p.requires_grad] if isinstance(fn, torch.nn.Module) else []
    inputs = [t.requires_grad_() for t in (q, k, v)] + weights
    grad_out = torch.randn_like(q)

    def forward_backward():
        # .backward(inputs=...) rather than autograd.grad: FlopCounterMode's module tracker
        # cannot follow autograd.grad through an nn.Module.
        for t in inputs:
            t.grad = None
        fn(q, k, v).backward(grad_out, inputs=inputs)
        return [t.grad for t in inputs]
    return forward_backward


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return "out of memory" in text or "can't allocate memory" in text


def _finite(result: object) -> bool:
    tensors = result if isinstance(result, tuple | list) else (result,)
    return all(bool(torch.isfinite(t).all()) for t in tensors if isinstance(t, torch.Tensor))


def _analytic(method, case: Case, itemsize: int, scores: float | None) -> dict:
    """The method's formulas for this case; `scores` is the realized count for data-dependent methods."""
    shape = case.shape
    forward = method.flops(shape, scores)
    backward = method.backward_flops(shape, scores) if case.mode == "backward" else 0
    scores = method.scores(shape) if scores is None else scores
    return {"flops_analytic": None if forward is None or backward is None else forward + backward,
            "scores_computed": scores,
            "sparsity": None if scores is None else scores / (shape.rows * shape.seq_len**2),
            "peak_mem_analytic_bytes": method.memory_bytes(shape, itemsize, case.mode, scores)}


def _measure(case: Case, settings: Settings, row: dict) -> None:
    method, shape, device = case.instance(), case.shape, torch.device(case.device)
    itemsize = torch.empty((), dtype=getattr(torch, case.dtype)).element_size()
    reason = method.unsupported(shape, case.mode)
    if reason:
        row.update(status="unsupported", error=reason)
        return
    q, k, v, generator = make_inputs(case)
    fn = method.build(shape, device=device, dtype=getattr(torch, case.dtype), generator=generator)
    call = make_call(fn, q, k, v, case.mode)
    if not _finite(call()):  # also the warm-up the memory pass needs
        row.update(status="nan", error="the output holds NaN or Inf")
        return
    extras = {}
    if hasattr(fn, "diagnostics"):  # method-specific figures, e.g. an inverse's residual
        with torch.no_grad():
            extras = fn.diagnostics(q, k, v)
    row.update(extras)
    row.update(_analytic(method, case, itemsize, extras.get("scores_computed")))
    analytic = row["flops_analytic"]
    if "flops" in settings.metrics:
        counted, by_op = count_flops(call)
        row.update(flops=counted, flops_by_op="; ".join(f"{op}={n}" for op, n in sorted(by_op.items())),
                   flops_mismatch=None if analytic is None else abs(counted - analytic) > FLOPS_TOLERANCE * analytic)
    if "fvcore" in settings.metrics and case.mode == "forward":  # fvcore traces forward only
        row["flops_fvcore"], row["flops_fvcore_skipped"] = fvcore_flops(fn, q, k, v)
    if "memory" in settings.metrics:
        row["peak_mem_bytes"] = peak_bytes(call, device)
    if "time" in settings.metrics:
        timing = time_call(call, device, threads=case.threads, min_time_s=settings.min_time_s,
                           max_time_s=settings.max_time_s)
        peak = matmul_peak_flops_per_s(case.device, case.dtype, case.threads)
        work = row.get("flops") or analytic
        achieved = None if work is None else work / (timing.median_ms / 1e3)
        row.update(time_samples_ms=[t * 1e3 for t in timing.samples_s],  # to the sidecar, not the CSV
                   time_ms_median=timing.median_ms, time_ms_iqr=timing.iqr_ms,
                   time_samples=len(timing.samples_s), time_calls_per_sample=timing.calls_per_sample,
                   time_noisy=timing.noisy, achieved_flops_per_s=achieved, machine_matmul_flops_per_s=peak,
                   machine_peak_fraction=None if achieved is None else achieved / peak)
    row["status"] = "ok"


def case_columns(case: Case) -> dict:
    """The identity half of a row: method, param_<name>, shape and set-up."""
    return {"method": case.method, **{f"param_{k}": v for k, v in case.params.items()},
            "batch": case.batch, "heads": case.heads, "seq_len": case.seq_len, "head_dim": case.head_dim,
            "dtype": case.dtype, "device": case.device, "mode": case.mode, "seed": case.seed,
            "threads": case.threads}


def columns_for(cases: Iterable[Case]) -> list[str]:
    """Every column the rows of these cases will have, in report order."""
    cases = list(cases)
    identity = dict.fromkeys(c for case in cases for c in case_columns(case))
    extras = dict.fromkeys(c for case in cases for c in get_method(case.method).extra_columns)
    env = dict.fromkeys(c for device in {case.device for case in cases} for c in environment(device))
    return [*identity, *RESULT_COLUMNS, *extras, *env]


def run_case(case: Case, settings: Settings | None = None) -> dict:
    """Measure one case; never raises for a failing case (the row's status says what happened)."""
    settings = settings or Settings()
    row = {**case_columns(case), **dict.fromkeys(RESULT_COLUMNS),
           **dict.fromkeys(get_method(case.method).extra_columns)}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(case.threads)
    try:
        _measure(case, settings, row)
    except Exception as exc:  # failures are data: record and go on
        row.update(status="oom" if _is_oom(exc) else "error",
                   error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
    finally:
        torch.set_num_threads(previous_threads)
    row["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    row.update(environment(case.device))
    return row


def iter_rows(cases: Iterable[Case], settings: Settings | None = None) -> Iterator[dict]:
    """Rows one by one, as each case finishes."""
    for case in cases:
        yield run_case(case, settings)


def run(cases: Iterable[Case], settings: Settings | None = None,
        on_row: Callable[[dict], None] | None = None):
    """Measure every case and return a pandas DataFrame, one row per case."""
    import pandas as pd

    rows = []
    for row in iter_rows(cases, settings):
        rows.append(row)
        if on_row:
            on_row(row)
    return pd.DataFrame(rows)
