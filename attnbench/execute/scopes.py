"""The scopes a case is measured at, as one type: each scope prepares its case into a `Prepared`
(what runs, its call in the case's mode, how to reset state between measured calls, the
method-specific diagnostics, the network's attention modules and a backward-only call), and the
runner treats every scope alike. The build's wall time goes to row['build_ms'].

- attention: the method's attention function on q, k, v (optionally through torch.compile); a
  decode step from a recurrent state has its state built with the function (build_ms);
- layer, model: an encoder layer or the LRA encoder around the method (attnbench.execute.model);
- swap: a Hugging Face model with the method in every layer (attnbench.hf.swap).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from attnbench.execute.calls import make_backward, make_call, make_inputs
from attnbench.execute.model import Prepared
from attnbench.measure.timing import synchronize
from attnbench.methods.contract import Unsupported
from attnbench.plan.scopes import ALL_SCOPES, SWAP


def _timed_build(row, device, build: Callable[[], object]):
    start = time.perf_counter()
    built = build()
    synchronize(device)
    row["build_ms"] = (time.perf_counter() - start) * 1e3
    return built


def build_attention(case, method, device, dtype, generator, k, v):
    """The method's function for the case; a decode step from a recurrent state (--cache state)
    builds that state from k, v here, before any timed call."""
    fn = method.make(case.shape, device=device, dtype=dtype, generator=generator)
    if case.shape.cache == "state":
        with torch.no_grad():
            return method.recurrent(fn, k, v)
    return fn


def attention(case, method, device, dtype, row) -> Prepared:
    q, k, v, generator = make_inputs(case)
    fn = _timed_build(row, device, lambda: build_attention(case, method, device, dtype, generator, k, v))
    timed = fn if case.compile == "off" else torch.compile(fn, mode=case.compile)

    def diagnostics() -> dict:
        with torch.no_grad():
            own, wide_k, wide_v = method.hook_view(fn, k, v)
            return method.diagnostics(own, q, wide_k, wide_v)
    backward = None if case.mode == "forward" else lambda: make_backward(timed, q, k, v)
    return Prepared(fn, (q, k, v), make_call(timed, q, k, v, case.mode), backward=backward, diagnostics=diagnostics,
                    qkv=(q, k, v))


def network(case, method, device, dtype, row) -> Prepared:
    from attnbench.execute.model import attention_diagnostics, mixed_precision, prepare_network

    prepared = _timed_build(row, device, lambda: prepare_network(
        case, method, device=device, dtype=dtype, generator=torch.Generator().manual_seed(case.seed)))
    mixed = mixed_precision(case.amp, device)
    prepared.diagnostics = lambda: attention_diagnostics(method, prepared.attentions, prepared.call, mixed)
    return prepared


def swap(case, method, device, dtype, row) -> Prepared:
    from attnbench.hf.swap import prepare_swap

    start = time.perf_counter()
    swapped = prepare_swap(case, method, device, dtype)
    row["build_ms"] = (time.perf_counter() - start) * 1e3  # the model's tokens; layers build in the first call
    return Prepared(swapped, (swapped.ids,), swapped)


PREPARE = {"attention": attention, "layer": network, "model": network, SWAP: swap}
assert set(PREPARE) == set(ALL_SCOPES), "every scope is prepared here"


def prepare(case, method, device, dtype, row) -> Prepared:
    """The case's scope made ready; --compile applies to the attention function alone."""
    if case.scope != "attention" and case.compile != "off":
        raise Unsupported("--compile compiles the method's attention function: it applies at attention scope")
    return PREPARE[case.scope](case, method, device, dtype, row)
