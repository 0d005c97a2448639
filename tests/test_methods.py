"""Every registered method, checked the same way (new methods are picked up automatically)."""

import pytest
import torch

from attnbench.measure.flops import count_flops
from attnbench.methods.full import explicit_softmax_attention
from attnbench.registry import Shape, create_method, list_methods

SHAPE = Shape(batch=2, heads=2, seq_len=128, head_dim=16)


def build(name, dtype=torch.float64, **params):
    method = create_method(name, **params)
    generator = torch.Generator().manual_seed(0)
    fn = method.build(SHAPE, device=torch.device("cpu"), dtype=dtype, generator=generator)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(SHAPE.batch, SHAPE.heads, SHAPE.seq_len, SHAPE.head_dim, generator=g, dtype=dtype)
               for _ in range(3))
    return method, fn, q, k, v


@pytest.mark.parametrize("name", list_methods())
def test_shape_finite_and_flops_match_the_analytic_formula(name):
    method, fn, q, k, v = build(name)
    with torch.no_grad():
        out = fn(q, k, v)
    assert out.shape == q.shape and torch.isfinite(out).all()
    counted, by_op = count_flops(lambda: fn(q, k, v))
    assert counted == pytest.approx(method.flops(SHAPE), rel=0.10), by_op
    assert 0 < method.scores(SHAPE) <= SHAPE.rows * SHAPE.seq_len**2


@pytest.mark.parametrize("name", list_methods())
def test_backward_reaches_every_input_and_counts_as_declared(name):
    method, fn, q, k, v = build(name)
    if not method.capabilities.backward:
        pytest.skip(f"{name} declares no backward")
    inputs = [t.requires_grad_() for t in (q, k, v)]
    grads = torch.autograd.grad(fn(*inputs), inputs, torch.ones_like(q))
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    counted, _ = count_flops(lambda: torch.autograd.grad(fn(*inputs), inputs, torch.ones_like(q)))
    expected = method.flops(SHAPE) + method.backward_flops(SHAPE)
    assert counted == pytest.approx(expected, rel=0.10)


@pytest.mark.parametrize("name", [n for n in list_methods() if create_method(n).capabilities.exact])
def test_exact_methods_equal_the_dense_reference(name):
    _, fn, q, k, v = build(name)
    reference = torch.softmax(q @ k.transpose(-2, -1) / SHAPE.head_dim**0.5, dim=-1) @ v
    torch.testing.assert_close(fn(q, k, v), reference, rtol=1e-10, atol=1e-12)


def test_explicit_reference_matches_sdpa_in_float32():
    _, fn, q, k, v = build("full", dtype=torch.float32)
    torch.testing.assert_close(explicit_softmax_attention(q, k, v), fn(q, k, v), rtol=1e-5, atol=1e-6)
