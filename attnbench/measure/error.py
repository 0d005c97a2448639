"""How far an approximation is from exact attention, in relative spectral and Frobenius norms.

Outputs are (n x p) per head, so their spectral norms are exact (an SVD of a thin matrix).
The effective attention matrix is q_len x n (n x n for self-attention): every method here is
linear in V once its randomness is fixed, so A X is the method run on V = X, and A^T Y is the
vector-Jacobian product of that call. Small n materializes A (V = I) and takes an exact SVD;
large n estimates ||A_hat - A||_2 by block power iteration on (A_hat - A)^T (A_hat - A) from those products alone.

Instruments only: tensors and linear maps in, numbers out; which methods are compared is the
error metric's business (attnbench.metrics.error).
"""

from __future__ import annotations

from typing import Callable

import torch

LinearMap = Callable[[torch.Tensor], torch.Tensor]  # X (b, h, n, r) -> M X (b, h, n, r)


def relative_errors(approx: torch.Tensor, exact: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per (batch, head): ||approx - exact|| / ||exact|| in the spectral and Frobenius norms."""
    diff, exact = (approx - exact).double(), exact.double()
    return {"spectral": torch.linalg.matrix_norm(diff, ord=2) / torch.linalg.matrix_norm(exact, ord=2),
            "frobenius": torch.linalg.matrix_norm(diff) / torch.linalg.matrix_norm(exact)}


def transpose_map(apply: LinearMap, columns: int | None = None) -> LinearMap:
    """Y -> M^T Y for a linear map given only by X -> M X (a vector-Jacobian product); M has
    `columns` columns (None: square)."""
    def apply_t(y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            rows = y.shape[-2] if columns is None else columns
            x = y.new_zeros(*y.shape[:-2], rows, y.shape[-1]).requires_grad_()
            (grad,) = torch.autograd.grad(apply(x), x, grad_outputs=y)
        return grad
    return apply_t


def spectral_norm_estimate(apply: LinearMap, apply_t: LinearMap, shape: tuple[int, ...], *, block: int = 4,
                           iters: int = 60, tol: float = 1e-4, generator: torch.Generator | None = None,
                           dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Largest singular value of each (b, h) matrix, from products with M and M^T only, whose
    vectors live on `device` (the maps' own); `generator`, if given, is on that device too.

    Block power (subspace) iteration on M^T M with a Rayleigh-Ritz step; stops when every
    estimate moved by less than `tol` (relative) in one step.
    """
    b, h, n = shape
    x = torch.randn(b, h, n, block, generator=generator, dtype=dtype, device=device)
    estimate = torch.zeros(b, h, dtype=dtype, device=device)
    for _ in range(iters):
        x, _ = torch.linalg.qr(x)
        y = apply(x)
        z = apply_t(y)
        ritz = torch.linalg.eigvalsh(x.transpose(-1, -2) @ z)[..., -1].clamp(min=0).sqrt()  # sigma_max of M restricted
        done = (ritz - estimate).abs() <= tol * ritz.clamp(min=1e-300)
        estimate, x = ritz, z
        if bool(done.all()):
            break
    return estimate


DENSE_ATTENTION_LIMIT = 1024  # above this n, the attention-matrix error is estimated matrix-free
POWER_BLOCK = 4  # vectors of the block power iteration


def value_width(n: int) -> int:
    """The width of the V that attention_error hands the method: n (V = I) or the power block."""
    return n if n <= DENSE_ATTENTION_LIMIT else POWER_BLOCK


def frozen_draws(method, fn) -> Callable:
    """fn(q, k, v) with the method's per-call sampler rewound each time, so that repeated calls
    (V = I, power iteration) see one and the same draw."""
    sampler = method.sampler(fn)
    if sampler is None:
        return fn
    state = sampler.get_state()

    def call(q, k, v):
        sampler.set_state(state)
        return fn(q, k, v)
    return call


def attention_error(fn: Callable, reference: Callable, q: torch.Tensor, k: torch.Tensor, exact_q: torch.Tensor,
                    exact_k: torch.Tensor) -> float:
    """Relative spectral error of the effective attention matrix (q_len x n: queries by keys) of
    `fn(q, k, .)` against `reference(exact_q, exact_k, .)` (the output for V = I), averaged over
    batch and heads. k, v have one head per query head here: a grouped V would mix the query heads
    of a group in M^T Y."""
    b, h, _, _ = q.shape
    n = k.shape[-2]
    wide = torch.float64
    if n <= DENSE_ATTENTION_LIMIT:
        eye = torch.eye(n, dtype=wide, device=q.device).expand(b, h, n, n)
        return float(relative_errors(fn(q, k, eye.to(q.dtype)), reference(exact_q, exact_k, eye))["spectral"].mean())

    def difference(x):
        return fn(q, k, x.to(q.dtype)).to(wide) - reference(exact_q, exact_k, x)

    def exact_map(x):
        return reference(exact_q, exact_k, x)

    def estimate(apply):
        return spectral_norm_estimate(apply, transpose_map(apply, n), (b, h, n), block=POWER_BLOCK, device=q.device)

    return float((estimate(difference) / estimate(exact_map)).mean())


def mean_std(values: list[float]) -> tuple[float, float]:
    spread = float(torch.tensor(values).std(unbiased=False)) if len(values) > 1 else 0.0
    return sum(values) / len(values), spread
