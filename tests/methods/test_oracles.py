"""Independent dense oracles for the methods that approximate softmax attention: the method's
formula applied literally in float64 to explicit n x n (Skyformer: the lifted 2n x 2n) matrices,
with the landmarks or projections the method itself drew, against the method's own output. If a
method's large error on some inputs (Skyformer's Fig. 1 on pretrained q, k, v) were a defect of
its implementation, these would fail; they pass, so that error is the approximation's own."""

import functools

import pytest
import torch

from attnbench.methods.contract import Shape
from attnbench.methods.registry import create_method
from attnbench.plan.case import Case

WIDE = torch.float64
RTOL = 1e-8


@functools.cache  # MiniLM runs once per kind and length, not once per method
def _inputs(kind: str, n: int):
    """q, k, v (1, 2, n, 32) in float64: MiniLM's (init, pretrained) or scaled Gaussians."""
    from attnbench.execute.calls import make_inputs

    source, scale = ("random", float(kind.split(":")[1])) if kind.startswith("random") else (kind, 1.0)
    case = Case("full", batch=1, heads=2, seq_len=n, head_dim=32, dtype="float64", inputs=source, input_scale=scale)
    q, k, v, _ = make_inputs(case)
    return q, k, v


def _built(name: str, n: int, **params):
    method = create_method(name, **params)
    return method.build(Shape(1, 2, n, 32), device="cpu", dtype=WIDE, generator=torch.Generator().manual_seed(7))


def _normalised(scores: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(A V) / (A 1): rows of an approximated score matrix normalised by their own sums."""
    return (scores @ v) / scores.sum(-1, keepdim=True)


def _pinv(m: torch.Tensor) -> torch.Tensor:
    """The pseudo-inverse with torch's stated cutoff (singular values below n * eps * the largest)."""
    return torch.linalg.pinv(m, hermitian=True)


def skyformer_oracle(fn, q, k, v):
    """Eq. 5 on B = exp(X X^T) of X = [Q; K] p^(-1/4): A~ = B[Q, L] B[L, L]^+ B[L, K], rows
    normalised by A~ 1 (the paper's Fig. 1 construction, gamma = 0, exact pseudo-inverse)."""
    n, p = q.shape[-2], q.shape[-1]
    x = torch.cat([q, k], dim=-2) * p**-0.25
    lifted = torch.exp(x @ x.transpose(-1, -2))  # 2n x 2n
    landmarks = fn.idx
    approx = lifted[..., :n, landmarks] @ _pinv(lifted[..., landmarks, :][..., :, landmarks]) \
        @ lifted[..., landmarks, n:]
    return _normalised(approx, v)


def nystromformer_oracle(fn, q, k, v, m: int):
    """softmax(Q K~^T) softmax(Q~ K~^T)^+ softmax(Q~ K^T) V with segment means of equal slices."""
    b, h, n, p = q.shape
    q, k = q * p**-0.25, k * p**-0.25
    q_land, k_land = (t.reshape(b, h, m, n // m, p).mean(-2) for t in (q, k))
    return torch.softmax(q @ k_land.transpose(-1, -2), -1) @ torch.linalg.pinv(
        torch.softmax(q_land @ k_land.transpose(-1, -2), -1)) @ torch.softmax(q_land @ k.transpose(-1, -2), -1) @ v


def performer_oracle(fn, q, k, v):
    """FAVOR+ as an explicit n x n matrix phi(Q) phi(K)^T, phi(x) = (exp(w x' - |x'|^2/2 - stab) + eps)
    / sqrt(m) over the method's own random directions, rows normalised by its sums."""
    m, scale = fn.omega.shape[0], fn.scale

    def phi(x, per_row):
        projected = (x * scale) @ fn.omega.T
        stab = projected.amax(-1, keepdim=True) if per_row else projected.amax((-1, -2), keepdim=True)
        return (torch.exp(projected - (x * scale).pow(2).sum(-1, keepdim=True) / 2 - stab) + 1e-4) / m**0.5
    return _normalised(phi(q, True) @ phi(k, False).transpose(-1, -2), v)


def linformer_oracle(fn, q, k, v):
    """softmax(Q (E K)^T / sqrt(p)) (F V) with the method's own E and F, as n x k matrices."""
    e_t, f_t = fn.e.transpose(-1, -2), fn.f.transpose(-1, -2)  # (h, n, k)
    scores = (q @ k.transpose(-1, -2) @ e_t) * q.shape[-1] ** -0.5  # Q K^T E^T: through the n x n scores
    return torch.softmax(scores, -1) @ (f_t.transpose(-1, -2) @ v)


CASES = {
    "skyformer": ({"target": "softmax", "gamma": 0.0, "inverse": "pinv", "features": 16}, skyformer_oracle),
    "nystromformer": ({"landmarks": 16, "inverse": "pinv"}, lambda fn, q, k, v: nystromformer_oracle(fn, q, k, v, 16)),
    "performer": ({"features": 64}, performer_oracle),
    "linformer": ({"proj_dim": 32}, linformer_oracle),
}
INPUTS = ["random:1", "random:2", "init", "pretrained"]


@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("n", [64, 256])
def test_each_softmax_approximation_equals_its_formula_applied_literally(name, inputs, n):
    if inputs in ("init", "pretrained"):
        pytest.importorskip("sentence_transformers", reason="pretrained inputs need attnbench[pretrained]")
    params, oracle = CASES[name]
    q, k, v = _inputs(inputs, n)
    fn = _built(name, n, **params)
    expected, got = oracle(fn, q, k, v), fn(q, k, v)
    difference = float((got - expected).norm() / expected.norm())
    bound = max(RTOL, 100 * torch.finfo(WIDE).eps * _landmark_condition(fn, q, k)) if name == "skyformer" else RTOL
    assert difference <= bound, f"{name} on {inputs} n={n}: {difference:.2e} from its literal formula"


def _landmark_condition(fn, q, k) -> float:
    """The condition number of Skyformer's landmark block B[L, L] over the singular values its
    pseudo-inverse keeps. The method inverts D^-1/2 M D^-1/2 and the oracle B[L, L]: equal in exact
    arithmetic, they agree in float64 only to about eps x this (1e10 for random inputs of scale 2)."""
    x = torch.cat([q, k], dim=-2) * q.shape[-1] ** -0.25
    block = torch.exp(x @ x.transpose(-1, -2))[..., fn.idx, :][..., :, fn.idx]
    values = torch.linalg.svdvals(block)
    kept = values > values[..., :1] * block.shape[-1] * torch.finfo(WIDE).eps
    return float((values[..., 0] / torch.where(kept, values, torch.inf).amin(-1)).max())
