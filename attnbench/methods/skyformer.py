"""Skyformer (Chen et al., NeurIPS 2021, arXiv:2111.00035): symmetrized Nystrom approximation of
kernelized attention, in time and memory linear in n.

Paper eqs. 4-6, as the official code computes them: stack X = [Q; K] (2n x p, both scaled by
p^(-1/4)), sample `features` landmark rows L of X uniformly with replacement, form the kernel
columns AS = k(X, L) (2n x d) and M = k(L, L) (d x d, the landmark rows of AS), regularise and
normalise M~ = D^(-1/2) (M + gamma I) D^(-1/2) with D = diag((M + gamma I) 1), invert M~ with
the Newton-Schulz iteration, and assemble out = C_Q D^(-1/2) Z D^(-1/2) (C_K^T V) right to left,
so nothing n x n is ever formed.

`target=softmax` approximates softmax attention instead, as the paper's Fig. 1 does ("we use the
algorithm behind Skyformer, mainly Eq. (5), to approximate the raw attention score matrix A ...
then approximate D, as Performer does"): Eq. (5)'s symmetrized Nystrom is applied to the lifted
matrix B = exp(X X^T / sqrt(p)) of X = [Q; K], whose query-key block is the raw scores
A = exp(Q K^T / sqrt(p)), and the output is D~^(-1) A~ V with D~ = A~ 1, the approximated row
sums. It is computed through the Gaussian kernel above: exp(x.y / sqrt(p)) =
k(x, y) e^(|x|^2 / 2 sqrt(p)) e^(|y|^2 / 2 sqrt(p)), and diagonal factors pass through the
Nystrom formula unchanged (exactly so when gamma = 0), so A~ = E_Q C_Q M~^+ C_K^T E_K; E_Q cancels in
the row normalisation and E_K (shifted by its max, which cancels too) weights V and the ones
vector the denominator is made from. Its exact target is then `full` (softmax).

Departures of the official code, as options: `sampling=half` (64 landmarks from Q rows and 64
from K rows instead of uniform over all 2n rows), `normalizer=32` (the hard-coded 32^(-1/4)
scale, equal to p^(-1/4) only for p = 32), `init=original` (Newton-Schulz start scaled by a max
over the whole batch and all heads). Landmarks are drawn once per build from the run's seed and
shared by batch and heads, as the official code shares one draw per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnbench.methods._linalg import INIT_RULES, gaussian_kernel, inverse_flops, iterative_inverse
from attnbench.methods.contract import Method, Shape, param, stage
from attnbench.methods.kernelized import PAPER


def _landmark_rows(n: int, features: int, sampling: str, generator: torch.Generator) -> torch.Tensor:
    """Indices into the 2n stacked rows [Q; K], uniform with replacement."""
    if sampling == "stacked":
        return torch.randint(0, 2 * n, (features,), generator=generator)
    half = features // 2  # official: first half from query rows, the rest from key rows
    return torch.cat([torch.randint(0, n, (half,), generator=generator),
                      torch.randint(0, n, (features - half,), generator=generator) + n])


class SkyformerAttention:
    """fn(q, k, v) with landmarks fixed at build time; `diagnostics` reports the inverse's residual."""

    def __init__(self, idx: torch.Tensor, gamma: float, iters: int, init: str, normalizer: int,
                 inverse: str, target: str = "kernelized") -> None:
        self.idx, self.gamma, self.iters, self.init = idx, gamma, iters, init
        self.normalizer, self.inverse, self.target = normalizer, inverse, target

    def _inverse(self, m_norm: torch.Tensor) -> torch.Tensor:
        if self.inverse == "pinv":  # exact pseudo-inverse (SVD), to check the approximation limit
            return torch.linalg.pinv(m_norm, hermitian=True)
        return iterative_inverse(m_norm, self.iters, self.init)

    def _factors(self, q, k):
        p = self.normalizer or q.shape[-1]
        with stage("landmarks"):
            x = torch.cat([q, k], dim=-2) * p**-0.25
            landmarks = x[..., self.idx, :]
        n = q.shape[-2]
        with stage("kernel blocks"):
            kernel_cols = gaussian_kernel(x, landmarks)  # AS: (b, h, 2n, d)
            m = kernel_cols[..., self.idx, :]  # k(L, L): landmark rows of AS
        with stage("pseudo-inverse"):  # its normalisation: the matrix the inverse is taken of
            m = m + self.gamma * torch.eye(m.shape[-1], device=m.device, dtype=m.dtype)
            d_inv_sqrt = m.sum(-1).rsqrt()
            m_norm = d_inv_sqrt.unsqueeze(-1) * m * d_inv_sqrt.unsqueeze(-2)
        return kernel_cols[..., :n, :], kernel_cols[..., n:, :], d_inv_sqrt, m_norm

    def __call__(self, q, k, v):
        c_q, c_k, d_inv_sqrt, m_norm = self._factors(q, k)
        with stage("pseudo-inverse"):
            z = self._inverse(m_norm)
        with stage("products"):
            if self.target == "softmax":  # weight V and a ones column by E_K: numerator and row sums at once
                e_k, _ = self._key_weights(k)
                v = torch.cat([v * e_k, e_k], dim=-1)
            context = d_inv_sqrt.unsqueeze(-1) * (c_k.transpose(-1, -2) @ v)  # D^-1/2 C_K^T V: (d, p)
            context = d_inv_sqrt.unsqueeze(-1) * (z @ context)
            out = c_q @ context
            return out[..., :-1] / out[..., -1:] if self.target == "softmax" else out

    def _key_weights(self, k):
        """E_K: exp(|k'|^2 / 2) per key, shifted by its max (which cancels in the row
        normalisation), as (b, h, n, 1); and that max, (b, h, 1, 1)."""
        half_sq_norm = (k * (self.normalizer or k.shape[-1]) ** -0.25).square().sum(-1, keepdim=True) / 2
        shift = half_sq_norm.amax(-2, keepdim=True)
        return (half_sq_norm - shift).exp(), shift

    def conditioning(self, q, k) -> dict:
        """M~ and its inverse; with target=softmax, the approximated row sums D~ (scaled by E_Q
        and the max shift, as computed) and the exact sums' exponents in the same scaling."""
        c_q, c_k, d_inv_sqrt, m_norm = self._factors(q, k)
        z = self._inverse(m_norm)
        parts = {"landmark_matrix": m_norm, "inverse": z}
        if self.target == "softmax":
            e_k, shift = self._key_weights(k)
            weighted = d_inv_sqrt.unsqueeze(-1) * (c_k.transpose(-1, -2) @ e_k)
            parts["row_sums"] = (c_q @ (d_inv_sqrt.unsqueeze(-1) * (z @ weighted))).squeeze(-1)
            scale = (self.normalizer or q.shape[-1]) ** -0.25
            qs = q * scale
            # k(q', k_j') e_k(j) = exp(q'.k_j' - |q'|^2 / 2 - max |k'|^2 / 2)
            parts["exact_exponents"] = (qs, k * scale, qs.square().sum(-1) / 2 + shift.squeeze(-1))
        return parts

    def diagnostics(self, q, k, v) -> dict[str, float]:
        """Worst spectral norm of I - Z M~ over batch and heads (the inverse's residual)."""
        _, _, _, m_norm = self._factors(q, k)
        z = self._inverse(m_norm)
        eye = torch.eye(m_norm.shape[-1], device=m_norm.device, dtype=m_norm.dtype)
        residual = torch.linalg.matrix_norm((eye - z @ m_norm).float(), ord=2)  # no norm kernel below float32
        return {"inverse_residual": float(residual.max())}


@dataclass(frozen=True)
class Skyformer(Method):
    """Symmetrized Nystrom approximation of kernelized attention, linear in n."""

    paper = PAPER
    refusals = {"causal": ("skyformer's Nystrom landmarks are segment means over all of Q and K, so every "
                           "output depends on future keys; its paper defines no causal form")}
    stages = ("landmarks", "kernel blocks", "pseudo-inverse", "products")
    extra_columns = ("inverse_residual",)
    column_help = {"inverse_residual": "the largest spectral norm of I - Z M~ over batch and heads (how far "
                                       "the Newton-Schulz inverse is from exact)"}

    features: int = param(128, "landmarks sampled from the stacked [Q; K] rows", low=1)
    gamma: float = param(0.1, "regulariser added to the landmark kernel M", low=0)
    iters: int = param(6, "Newton-Schulz iterations for the inverse", low=0)
    init: str = param("razavi", "Newton-Schulz start: razavi (paper), original (official code), exact",
                      choices=INIT_RULES)
    sampling: str = param("stacked", "landmarks: stacked (uniform over 2n rows) or half (official: half Q, half K)",
                          choices=("stacked", "half"))
    inverse: str = param("newton", "newton (Newton-Schulz, as the paper) or pinv (exact SVD, for checking)",
                         choices=("newton", "pinv"))
    normalizer: int = param(0, "q, k scale p^(-1/4); 0 uses head_dim, 32 reproduces the official code", low=0)
    target: str = param("kernelized", "what is approximated: kernelized (the paper's method) or softmax "
                        "(Fig. 1: Nystrom on exp(QK^T/sqrt(p)), rows normalised by the approximated sums)",
                        choices=("kernelized", "softmax"))

    def build(self, shape, *, device, dtype, generator):
        idx = _landmark_rows(shape.seq_len, self.features, self.sampling, generator).to(device)
        return SkyformerAttention(idx, self.gamma, self.iters, self.init, self.normalizer, self.inverse, self.target)

    @property
    def exact_target(self) -> str:  # what this instance approximates (Method.exact_target)
        return "kernelized" if self.target == "kernelized" else "full"

    def exact_target_params(self) -> dict:
        return {"normalizer": self.normalizer} if self.target == "kernelized" else {}

    def unsupported(self, shape, mode):
        if self.target == "softmax" and self.normalizer not in (0, shape.head_dim):
            return ("target=softmax approximates softmax(QK^T / sqrt(head_dim)): leave normalizer at 0 "
                    f"(it is {self.normalizer}, head_dim {shape.head_dim})")
        return super().unsupported(shape, mode)

    def diagnostics(self, fn, q, k, v):
        return fn.diagnostics(q, k, v)

    def conditioning(self, fn, q, k):
        return fn.conditioning(q, k)

    def flops(self, shape: Shape, scores=None) -> float:
        n, d, p = shape.seq_len, self.features, shape.head_dim
        kernel = 2 * (2 * n) * d * p  # AS = k([Q; K], L)
        width = p + (self.target == "softmax")  # softmax: V and the ones column of the row sums
        assemble = 2 * n * d * width + 2 * d * d * width + 2 * n * d * width  # C_K^T V, Z (.), C_Q (.)
        inverse = inverse_flops(d, self.iters) if self.inverse == "newton" else 0  # SVD: not matmul-class
        return shape.rows * (kernel + inverse + assemble)

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * 2 * shape.seq_len * self.features  # kernel entries of [Q; K] vs landmarks

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        n, d, p = shape.seq_len, self.features, shape.head_dim
        per_head = 2 * n * p * 2 + 2 * n * d + 8 * d * d + n * p  # [Q; K] scaled, AS, inverse, out
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
