"""Every registered method, checked the same way (new methods are picked up automatically)."""

import pytest
import torch

from attnbench.execute.calls import make_call
from attnbench.measure.flops import count_flops
from attnbench.methods.contract import Shape, Unsupported
from attnbench.methods.full import explicit_softmax_attention
from attnbench.methods.registry import create_method, list_methods
from tests.conftest import SMALL

SHAPE = Shape(batch=2, heads=2, seq_len=128, head_dim=16)
# Parameters that fit SHAPE where a method's defaults assume longer sequences.


def build(name, dtype=torch.float64, **params):
    """A method's function and inputs in float64 on the CPU; a kernel that does not run here (SDPA's
    CUDA-only backends; FlexAttention in float64 or backward on CPU: test_kernels checks those
    refusals and runs FlexAttention in float32) skips the test with torch's reason."""
    method = create_method(name, **{**SMALL.get(name, {}), **params})
    generator = torch.Generator().manual_seed(0)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(SHAPE.batch, SHAPE.heads, SHAPE.seq_len, SHAPE.head_dim, generator=g, dtype=dtype)
               for _ in range(3))
    try:
        fn = method.build(SHAPE, device=torch.device("cpu"), dtype=dtype, generator=generator)
        if method.compiled():
            fn(q, k, v)  # FlexAttention refuses float64 on its first call
    except Unsupported as exc:
        pytest.skip(str(exc))
    return method, fn, q, k, v


def realized_scores(method, fn, q, k, v):
    """The scores a data-dependent method computed on one draw (None for static methods)."""
    with torch.no_grad():
        return method.diagnostics(fn, q, k, v).get("scores_computed")


@pytest.mark.parametrize("name", list_methods())
def test_shape_finite_and_flops_match_the_analytic_formula(name):
    method, fn, q, k, v = build(name)
    with torch.no_grad():
        out = fn(q, k, v)
    assert out.shape == q.shape and torch.isfinite(out).all()
    scores = realized_scores(method, fn, q, k, v)
    if not method.flops_countable():
        pytest.skip(f"{name}: FlopCounterMode cannot run it")
    with torch.no_grad():
        counted, by_op = count_flops(lambda: fn(q, k, v))
    assert counted == pytest.approx(method.flops(SHAPE, scores), rel=0.10), by_op
    assert (scores or method.scores_computed(SHAPE)) > 0  # may exceed n^2 (e.g. Skyformer with 2n*d > n^2)


@pytest.mark.parametrize("name", list_methods())
def test_backward_reaches_every_input_and_counts_as_declared(name):
    method, fn, q, k, v = build(name)
    if not method.capabilities.backward:
        pytest.skip(f"{name} declares no backward")
    call = make_call(fn, q, k, v, "backward")
    grads = call()
    if method.capabilities.shared_qk:  # k is unused by design
        grads = [g for i, g in enumerate(grads) if i != 1]
    assert len(grads) >= 2 and all(g is not None and torch.isfinite(g).all() for g in grads)
    counted, _ = count_flops(call)
    scores = realized_scores(method, fn, q, k, v)
    expected = method.flops(SHAPE, scores) + method.backward_flops(SHAPE, scores)
    assert counted == pytest.approx(expected, rel=0.10)


@pytest.mark.parametrize("name", [n for n in list_methods() if create_method(n).capabilities.exact])
def test_exact_methods_equal_the_dense_reference(name):
    _, fn, q, k, v = build(name)
    reference = torch.softmax(q @ k.transpose(-2, -1) / SHAPE.head_dim**0.5, dim=-1) @ v
    torch.testing.assert_close(fn(q, k, v), reference, rtol=1e-10, atol=1e-12)


def test_explicit_reference_matches_sdpa_in_float32():
    _, fn, q, k, v = build("full", dtype=torch.float32)
    torch.testing.assert_close(explicit_softmax_attention(q, k, v), fn(q, k, v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list_methods())
def test_the_same_seed_gives_the_same_output_and_flops_twice(name):
    """The CI gate compares FLOPs and sparsity exactly: they must not depend on anything but the seed."""
    from attnbench.execute.runner import run_case
    from attnbench.plan.case import MeasureOptions, make_cases

    outputs = []
    for _ in range(2):
        method, fn, q, k, v = build(name)
        with torch.no_grad():
            outputs.append(fn(q, k, v))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    small = {key: [value] for key, value in SMALL.get(name, {}).items()}
    (case,) = make_cases([name], [SHAPE.seq_len], small, heads=SHAPE.heads, head_dim=SHAPE.head_dim, threads=1)
    options = MeasureOptions(metrics=("flops", "sparsity"))
    first, second = run_case(case, options), run_case(case, options)
    assert first["status"] == second["status"] == "ok", first["status_detail"]
    assert (first["flops"], first["sparsity"]) == (second["flops"], second["sparsity"])
