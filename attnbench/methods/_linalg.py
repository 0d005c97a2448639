"""Small linear-algebra pieces shared by the Nyström-family methods."""

from __future__ import annotations

import torch

INIT_RULES = ("razavi", "original", "exact")


def iterative_inverse(mat: torch.Tensor, iters: int, init: str = "razavi") -> torch.Tensor:
    """Razavi et al. (2014) 7th-order Newton-Schulz iteration for mat^+ over the last two dims.

    Z <- Z (13 I - M Z (15 I - M Z (7 I - M Z))) / 4, from Z0 = M^T / c where c is
      'razavi':   ||M||_1 ||M||_inf per matrix (converges for any M; Nystromformer paper eq. 16),
      'original': the largest column sum over the whole batch and heads (the official
                  Nystromformer/Skyformer code; equals 'razavi' only when rows sum to 1),
      'exact':    the largest column sum per matrix (the official code's other branch).
    """
    absolute = mat.abs()
    col_max = absolute.sum(dim=-2).amax(dim=-1, keepdim=True).unsqueeze(-1)
    if init == "razavi":
        scale = col_max * absolute.sum(dim=-1).amax(dim=-1, keepdim=True).unsqueeze(-1)
    elif init == "exact":
        scale = col_max
    elif init == "original":
        scale = col_max.amax()
    else:
        raise ValueError(f"unknown init rule {init!r}; use one of {INIT_RULES}")
    eye = torch.eye(mat.shape[-1], device=mat.device, dtype=mat.dtype)
    z = mat.transpose(-1, -2) / scale
    for _ in range(iters):
        mz = mat @ z
        z = 0.25 * z @ (13 * eye - mz @ (15 * eye - mz @ (7 * eye - mz)))
    return z


def inverse_flops(size: int, iters: int) -> int:
    """Matmul FLOPs of `iterative_inverse` on one size x size matrix: four matmuls a step."""
    return iters * 4 * 2 * size**3


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """exp(-||x_i - y_j||^2 / 2) for rows of x and y, built in place on the x y^T buffer."""
    scores = x @ y.transpose(-1, -2)
    scores.sub_(0.5 * x.pow(2).sum(-1, keepdim=True)).sub_(0.5 * y.pow(2).sum(-1).unsqueeze(-2))
    return scores.exp_()
