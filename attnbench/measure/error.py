"""How far an approximation is from exact attention, in relative spectral and Frobenius norms.

Outputs are (n x p) per head, so their spectral norms are exact (an SVD of a thin matrix).
The effective attention matrix is n x n: every method here is linear in V once its randomness
is fixed, so A X is the method run on V = X, and A^T Y is the vector-Jacobian product of that
call. Small n materializes A (V = I) and takes an exact SVD; large n estimates ||A_hat - A||_2
by block power iteration on (A_hat - A)^T (A_hat - A) from those products alone.
"""

from __future__ import annotations

from typing import Callable

import torch

from attnbench.registry import create_method

LinearMap = Callable[[torch.Tensor], torch.Tensor]  # X (b, h, n, r) -> M X (b, h, n, r)


def relative_errors(approx: torch.Tensor, exact: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per (batch, head): ||approx - exact|| / ||exact|| in the spectral and Frobenius norms."""
    diff, exact = (approx - exact).double(), exact.double()
    return {"spectral": torch.linalg.matrix_norm(diff, ord=2) / torch.linalg.matrix_norm(exact, ord=2),
            "frobenius": torch.linalg.matrix_norm(diff) / torch.linalg.matrix_norm(exact)}


def transpose_map(apply: LinearMap) -> LinearMap:
    """Y -> M^T Y for a linear map given only by X -> M X (a vector-Jacobian product)."""
    def apply_t(y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = torch.zeros_like(y, requires_grad=True)
            (grad,) = torch.autograd.grad(apply(x), x, grad_outputs=y)
        return grad
    return apply_t


def spectral_norm_estimate(apply: LinearMap, apply_t: LinearMap, shape: tuple[int, ...], *, block: int = 4,
                           iters: int = 60, tol: float = 1e-4, generator: torch.Generator | None = None,
                           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Largest singular value of each (b, h) matrix, from products with M and M^T only.

    Block power (subspace) iteration on M^T M with a Rayleigh-Ritz step; stops when every
    estimate moved by less than `tol` (relative) in one step.
    """
    b, h, n = shape
    x = torch.randn(b, h, n, block, generator=generator, dtype=dtype)
    estimate = torch.zeros(b, h, dtype=dtype)
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


def attention_error(case, fn, reference, q, k, exact_inputs) -> float:
    """Relative spectral error of the effective attention matrix (the output for V = I)."""
    n, wide = case.seq_len, torch.float64
    if n <= DENSE_ATTENTION_LIMIT:
        eye = torch.eye(n, dtype=wide, device=q.device).expand(case.batch, case.heads, n, n)
        return float(relative_errors(fn(q, k, eye.to(q.dtype)), reference(*exact_inputs[:2], eye))["spectral"].mean())

    def difference(x):
        return fn(q, k, x.to(q.dtype)).to(wide) - reference(*exact_inputs[:2], x)

    def exact_map(x):
        return reference(*exact_inputs[:2], x)

    dims = (case.batch, case.heads, n)
    return float((spectral_norm_estimate(difference, transpose_map(difference), dims)
                  / spectral_norm_estimate(exact_map, transpose_map(exact_map), dims)).mean())


def _mean_std(values: list[float]) -> tuple[float, float]:
    spread = float(torch.tensor(values).std(unbiased=False)) if len(values) > 1 else 0.0
    return sum(values) / len(values), spread


def case_errors(case, method, q, k, v, *, reference: str, repeats: int) -> dict:
    """Output and attention-matrix errors of `method` against `reference` (and against the
    method's exact target, e.g. Skyformer's kernelized attention), over `repeats` draws."""
    shape, wide = case.shape, torch.float64
    exact_inputs = (q.to(wide), k.to(wide), v.to(wide))

    def exact(name, **params):
        target = create_method(name, **params)
        return frozen_draws(target, target.build(shape, device=q.device, dtype=wide,
                                                 generator=torch.Generator().manual_seed(case.seed)))

    references = {"": exact(reference)}
    if method.exact_target:
        references["target_"] = exact(method.exact_target, **method.exact_target_params())
    exact_outputs = {key: ref(*exact_inputs) for key, ref in references.items()}
    found: dict[str, list[float]] = {}
    first = None
    for repeat in range(repeats):
        generator = torch.Generator().manual_seed(case.seed * 1000 + repeat + 1)
        fn = frozen_draws(method, method.build(shape, device=q.device, dtype=q.dtype, generator=generator))
        first = first or fn
        out = fn(q, k, v)
        for key, target in exact_outputs.items():
            errors = relative_errors(out, target)
            found.setdefault(f"{key}spectral", []).append(float(errors["spectral"].mean()))
            found.setdefault(f"{key}frobenius", []).append(float(errors["frobenius"].mean()))
    try:
        attention = attention_error(case, first, references[""], q, k, exact_inputs)
    except RuntimeError:  # a wrapped implementation that cannot take V wider than its heads
        attention = None
    spectral, spectral_std = _mean_std(found["spectral"])
    result = {"error_reference": reference, "error_spectral": spectral, "error_spectral_std": spectral_std,
              "error_frobenius": _mean_std(found["frobenius"])[0], "error_attention_spectral": attention}
    if method.exact_target:
        target_spectral, target_std = _mean_std(found["target_spectral"])
        result.update(error_target=method.exact_target, error_target_spectral=target_spectral,
                      error_target_spectral_std=target_std)
    return result
