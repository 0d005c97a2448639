"""Measure one case: build its inputs, then run each chosen metric's pass on the same call.

The passes disturb each other (a dispatch mode and the profiler slow every op), so each runs
the same call separately, after a warm-up call that also checks the output is finite; timing
runs last. A failing case becomes a row with a status ('oom', 'nan', 'unsupported', 'error').
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

from attnbench.execute.rows import stamp
from attnbench.execute.scopes import prepare
from attnbench.measure.timing import synchronize
from attnbench.methods.contract import Unsupported
from attnbench.metrics import chosen
from attnbench.plan.case import Case, MeasureOptions
from attnbench.plan.scopes import SWAP
from attnbench.results.schema import Row, new_row


@dataclass
class PassContext:
    """What a metric's pass sees (attnbench.metrics.Metric.measure). At attention scope `fn` is
    the method's attention function and `inputs` are q, k, v; at layer and model scope `fn` is
    the network and `inputs` its input (q, k, v are then None). A pass that keeps raw samples
    leaves them on `row.samples`, one list per process."""

    case: Case
    options: MeasureOptions
    method: Any
    fn: Callable
    inputs: tuple
    call: Callable[[], object]
    q: torch.Tensor | None
    k: torch.Tensor | None
    v: torch.Tensor | None
    device: torch.device
    itemsize: int
    row: Row
    fresh_state: Callable[[], None]  # drop gradients and optimizer state before a measured call
    attentions: list  # layer/model scope: the network's Attention modules (attnbench.execute.model)
    # A case with a backward: makes the backward pass alone as a call (one forward kept, its graph
    # retained); None for a forward case.
    backward: Callable[[], Callable[[], object]] | None = None


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
    """The method's formulas for this case; `scores` is the realized count for data-dependent
    methods (per attention call). At layer and model scope, each layer's attention plus the
    matmuls around it (attnbench.execute.model.dense_flops); a backward or training step costs the
    forward plus two matmuls per matmul of the dense part."""
    from attnbench.execute.model import dense_flops
    from attnbench.plan.scopes import model_shape

    if case.scope == SWAP:  # a whole model: the formulas are the attention's alone
        return dict.fromkeys(("flops_analytic", "scores_computed", "peak_mem_analytic_bytes", "bytes_moved_analytic",
                              "cache_bytes"))
    cache = _cache_bytes(method, case.shape, itemsize)
    shape = method.formula_shape(case.shape)  # per head when the method repeats k, v
    forward = method.flops(shape, scores)
    backward = method.backward_flops(shape, scores) if case.mode != "forward" else 0
    scores = method.scores_computed(shape) if scores is None else scores
    attention = None if forward is None or backward is None else forward + backward
    if case.scope == "attention":
        memory, moved = method.memory_bytes(shape, itemsize, case.mode, scores), \
            method.bytes_moved(shape, itemsize, case.mode, scores)
        if shape != case.shape and memory is not None:  # k, v repeated in the call: the copies, written once
            copies = 2 * shape.batch * shape.heads * shape.seq_len * shape.head_dim * itemsize
            memory, moved = memory + copies, None if moved is None else moved + copies
        return {"flops_analytic": attention, "scores_computed": scores,
                "peak_mem_analytic_bytes": memory, "bytes_moved_analytic": moved, "cache_bytes": cache}
    model = model_shape(case)
    dense = dense_flops(case.batch, case.seq_len, case.heads, case.head_dim, model, case.scope, case.kv_heads)
    dense *= 1 if case.mode == "forward" else 3
    return {"flops_analytic": None if attention is None else case.layers * attention + dense,
            "scores_computed": scores, "peak_mem_analytic_bytes": None, "bytes_moved_analytic": None,
            "cache_bytes": None}


def _cache_bytes(method, shape, itemsize: int) -> float | None:
    """A decode step's cache: the k and v of the positions before its block, or the method's state."""
    if shape.cache == "state":
        return method.state_bytes(shape, itemsize)
    if not shape.short_query:
        return None
    return 2 * shape.batch * shape.keys_heads * (shape.seq_len - shape.q_len) * shape.head_dim * itemsize


def _measure(case: Case, options: MeasureOptions, row: Row) -> None:
    method, shape, device = case.instance(), case.shape, torch.device(case.device)
    dtype = getattr(torch, case.dtype)
    reason = method.unsupported(shape, "backward" if case.mode == "train" else case.mode)
    if reason:
        row.update(status="unsupported", status_detail=reason)
        return
    with torch.set_grad_enabled(case.mode != "forward"):  # a build may probe its kernel's backward
        prepared = prepare(case, method, device, dtype, row)
    start = time.perf_counter()
    first = prepared.call()  # also the warm-up the memory pass needs; under --compile, the compilation
    synchronize(device)
    if case.compile != "off" or method.compiled():
        row["compile_s"] = time.perf_counter() - start
    row["kernel_compile_mode"] = method.compile_mode(device)
    if case.shape.grouped:
        row["grouped_kv"] = "repeated" if method.kv_grouping(case.shape) == "repeat" else "native"
    if not _finite(first):
        row.update(status="nan", status_detail="the output holds NaN or Inf")
        return
    extras = prepared.diagnostics()
    row.update(extras)
    itemsize = torch.empty((), dtype=dtype).element_size()
    row.update(_analytic(method, case, itemsize, extras.get("scores_computed")))
    context = PassContext(case, options, method, prepared.fn, prepared.inputs, prepared.call, *prepared.qkv, device,
                          itemsize, row, prepared.fresh_state, prepared.attentions, prepared.backward)
    for metric in chosen(options.metrics):
        row.update(metric.measure(context))
    row["status"] = "ok"


# What torch warns while it picks an SDPA kernel (which fused kernels it passed over, e.g. for a V
# of another width than Q and K): nothing about the case's figures, said on every call.
NOT_ABOUT_THE_CASE = ("Flash attention requires", "Flash attention kernel not used", "Memory efficient kernel not used",
                      "Memory Efficient attention requires", "CuDNN attention kernel not used",
                      "cuDNN attention requires", "Torch was not compiled with")


def case_warnings(caught) -> str:
    """The warnings a case raised that may matter to its figures, each once: 'warned: ...; ...'."""
    said = []
    for warning in caught:
        if issubclass(warning.category, DeprecationWarning | PendingDeprecationWarning | FutureWarning):
            continue  # about code to change, not about this case
        text = str(warning.message).split("(Triggered internally")[0].strip()
        first = text.splitlines()[0] if text else type(warning.message).__name__
        if not first.startswith(NOT_ABOUT_THE_CASE) and first not in said:
            said.append(first)
    return ("warned: " + "; ".join(said))[:500] if said else ""


def run_case(case: Case, options: MeasureOptions | None = None) -> Row:
    """Measure one case; never raises for a failing case (the row's status says what happened).
    Warnings are caught, not printed: those that may matter go in the row's status_detail, once."""
    options = options or MeasureOptions()
    if case.threads is None:  # a Case made by hand: torch's thread count, recorded as such
        case = dataclasses.replace(case, threads=torch.get_num_threads())
    row = new_row(case)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(case.threads)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # entering it resets "once per place": once per case
        _measure_or_record(case, options, row)
    torch.set_num_threads(previous_threads)
    warned = case_warnings(caught)
    if warned:
        row["status_detail"] = "; ".join(filter(None, (row.get("status_detail"), warned)))[:500]
    row["case_seconds"] = time.perf_counter() - start  # building, warm-up and every pass
    return stamp(row, case)


def _measure_or_record(case: Case, options: MeasureOptions, row: Row) -> None:
    try:
        _measure(case, options, row)
    except Unsupported as exc:
        row.update(status="unsupported", status_detail=str(exc).splitlines()[0][:500])
    except FloatingPointError as exc:  # a training run that diverged (attnbench.execute.training.Diverged)
        row.update(status="nan", status_detail=str(exc)[:500])
    except Exception as exc:  # failures are data: record and go on
        row.update(status="oom" if _is_oom(exc) else "error",
                   status_detail=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
