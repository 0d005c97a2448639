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
from attnbench.env import environment
from attnbench.measure.flops import count_flops, fvcore_flops
from attnbench.measure.memory import peak_bytes
from attnbench.measure.timing import matmul_peak_flops_per_s, time_call
from attnbench.registry import get_method

FLOPS_TOLERANCE = 0.10  # counted vs analytic beyond this is flagged in the row

ERROR_COLUMNS = ("error_reference", "error_spectral", "error_spectral_std", "error_frobenius",
                 "error_attention_spectral", "error_target", "error_target_spectral", "error_target_spectral_std")
DENSE_ATTENTION_LIMIT = 1024  # above this n, the attention-matrix error is estimated matrix-free
RESULT_COLUMNS = (
    "status", "error", "time_ms_median", "time_ms_iqr", "time_samples", "time_calls_per_sample",
    "time_noisy", "flops", "flops_analytic", "flops_mismatch", "flops_fvcore", "flops_fvcore_skipped",
    "flops_by_op", "peak_mem_bytes", "peak_mem_analytic_bytes", "sparsity", "scores_computed",
    "achieved_flops_per_s", "machine_matmul_flops_per_s", "machine_peak_fraction", *ERROR_COLUMNS, "timestamp",
)


@dataclass(frozen=True)
class Settings:
    """How to measure: which passes run and the time budget of the timing pass."""

    metrics: tuple[str, ...] = ("time", "flops", "memory", "fvcore")
    min_time_s: float = 0.5  # timing runs at least this long, then stops once IQR/median < 10%
    max_time_s: float = 5.0  # ... or when this much time was spent measuring
    reference: str = "full"  # error metric: the exact attention outputs are compared with
    repeats: int = 1  # error metric: independent draws of a stochastic method


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """q, k, v for the case (drawn on the CPU so every device sees the same values), and the
    generator the method draws its own randomness from."""
    generator = torch.Generator().manual_seed(case.seed)
    dims = (case.batch, case.heads, case.seq_len, case.head_dim)
    if case.inputs == "random":
        tensors = [torch.randn(dims, generator=generator) * case.input_scale for _ in range(3)]
    else:
        from attnbench.inputs import transformer_qkv

        tensors = transformer_qkv(case.inputs, *dims, layer=case.layer, seed=case.seed)
    q, k, v = (t.to(case.device, getattr(torch, case.dtype)) for t in tensors)
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
    # EAGAIN: under an address-space cap, a new thread finds no room for its stack.
    return any(sign in text for sign in ("out of memory", "can't allocate memory", "Resource temporarily unavailable"))


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
    if "error" in settings.metrics:
        with torch.no_grad():  # the matrix-free estimate turns gradients on where it needs them
            row.update(_errors(case, settings, method, q.detach(), k.detach(), v.detach()))
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


def _frozen_draws(fn) -> Callable:
    """fn(q, k, v) with the method's per-call sampler rewound each time, so that repeated calls
    (V = I, power iteration) see one and the same draw."""
    sampler = getattr(fn, "sampler", None)
    if sampler is None:
        return fn
    state = sampler.get_state()

    def call(q, k, v):
        sampler.set_state(state)
        return fn(q, k, v)
    return call


def _attention_error(case: Case, fn, reference, q, k, exact_inputs) -> float:
    """Relative spectral error of the effective attention matrix (the output for V = I)."""
    from attnbench.measure.error import relative_errors, spectral_norm_estimate, transpose_map

    n, wide = case.seq_len, torch.float64
    if n <= DENSE_ATTENTION_LIMIT:
        eye = torch.eye(n, dtype=wide, device=q.device).expand(case.batch, case.heads, n, n)
        return float(relative_errors(fn(q, k, eye.to(q.dtype)), reference(*exact_inputs[:2], eye))["spectral"].mean())
    difference = lambda x: fn(q, k, x.to(q.dtype)).to(wide) - reference(*exact_inputs[:2], x)  # noqa: E731
    exact_map = lambda x: reference(*exact_inputs[:2], x)  # noqa: E731
    dims = (case.batch, case.heads, n)
    return float((spectral_norm_estimate(difference, transpose_map(difference), dims)
                  / spectral_norm_estimate(exact_map, transpose_map(exact_map), dims)).mean())


def _errors(case: Case, settings: Settings, method, q, k, v) -> dict:
    """Output and attention-matrix errors against the reference (and the method's exact target)."""
    from attnbench.measure.error import relative_errors
    from attnbench.registry import create_method

    shape, wide = case.shape, torch.float64
    exact_inputs = (q.to(wide), k.to(wide), v.to(wide))

    def exact(name):
        return _frozen_draws(create_method(name).build(shape, device=q.device, dtype=wide,
                                                       generator=torch.Generator().manual_seed(case.seed)))

    references = {"": exact(settings.reference)}
    if method.exact_target:
        references["target_"] = exact(method.exact_target)
    exact_outputs = {key: ref(*exact_inputs) for key, ref in references.items()}
    found: dict[str, list[float]] = {}
    first = None
    for repeat in range(settings.repeats):
        generator = torch.Generator().manual_seed(case.seed * 1000 + repeat + 1)
        fn = _frozen_draws(method.build(shape, device=q.device, dtype=q.dtype, generator=generator))
        first = first or fn
        out = fn(q, k, v)
        for key, target in exact_outputs.items():
            errors = relative_errors(out, target)
            found.setdefault(f"{key}spectral", []).append(float(errors["spectral"].mean()))
            found.setdefault(f"{key}frobenius", []).append(float(errors["frobenius"].mean()))
    try:
        attention = _attention_error(case, first, references[""], q, k, exact_inputs)
    except RuntimeError:  # a wrapped implementation that cannot take V wider than its heads
        attention = None
    spread = lambda values: float(torch.tensor(values).std(unbiased=False)) if len(values) > 1 else 0.0  # noqa: E731
    result = {"error_reference": settings.reference, "error_spectral": sum(found["spectral"]) / len(found["spectral"]),
              "error_spectral_std": spread(found["spectral"]),
              "error_frobenius": sum(found["frobenius"]) / len(found["frobenius"]), "error_attention_spectral": attention}
    if method.exact_target:
        result.update(error_target=method.exact_target,
                      error_target_spectral=sum(found["target_spectral"]) / settings.repeats,
                      error_target_spectral_std=spread(found["target_spectral"]))
    return result


def case_columns(case: Case) -> dict:
    """The identity half of a row: method, param_<name>, shape and set-up."""
    return {"method": case.method, **{f"param_{k}": v for k, v in case.params.items()},
            "batch": case.batch, "heads": case.heads, "seq_len": case.seq_len, "head_dim": case.head_dim,
            "dtype": case.dtype, "device": case.device, "mode": case.mode, "seed": case.seed,
            "inputs": case.inputs, "input_scale": case.input_scale, "layer": case.layer, "threads": case.threads}


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
