"""Nystromformer (Xiong et al., AAAI 2021, arXiv:2102.03902), as the official LRA code computes it.

Landmarks are segment means of Q and K (m segments); with Q and K scaled by p^(-1/4) each,
out = softmax(Q K~^T) pinv(softmax(Q~ K~^T)) (softmax(Q~ K^T) V), the pseudo-inverse by the
Newton-Schulz iteration (eq. 16), assembled right to left so nothing n x n is formed. Options:
`conv` adds the official depthwise convolution of V along the sequence (LRA used 35; 0 = off),
`init` the iteration's start (razavi = the paper's per-matrix rule; original = the official
code's single maximum over batch and heads), `inverse=pinv` an exact SVD pseudo-inverse.
n need not be a multiple of m: segments then differ by one token (the official code requires
n % m == 0). With m = n every segment is one token and the approximation is exact up to the
inverse; there is no silent switch to exact attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.methods._linalg import INIT_RULES, inverse_flops, iterative_inverse
from attnbench.methods.contract import Method, Shape, param, stage

PAPER = "Xiong et al. 2021, Nystromformer: A Nystrom-Based Algorithm for Approximating Self-Attention, arXiv:2102.03902"


def segment_means(x: torch.Tensor, segments: int) -> torch.Tensor:
    """Means of `segments` contiguous, near-equal slices along dim -2 (vectorized via cumsum)."""
    n = x.shape[-2]
    bounds = torch.div(torch.arange(segments + 1, device=x.device) * n, segments, rounding_mode="floor")
    total = F.pad(x.cumsum(-2), (0, 0, 1, 0))
    sums = total[..., bounds[1:], :] - total[..., bounds[:-1], :]
    return sums / (bounds[1:] - bounds[:-1]).to(x.dtype).unsqueeze(-1)


class NystromAttention(torch.nn.Module):
    def __init__(self, method: "Nystromformer", shape: Shape, device, dtype, generator) -> None:
        super().__init__()
        self.method = method
        self.conv = None
        if method.conv:  # one filter per head over the sequence, shared by the head's channels
            self.conv = torch.nn.Conv2d(shape.heads, shape.heads, (method.conv, 1), padding=(method.conv // 2, 0),
                                        groups=shape.heads, bias=False).to(dtype)
            bound = (1 / method.conv) ** 0.5
            torch.nn.init.uniform_(self.conv.weight, -bound, bound, generator=generator)  # on the CPU, then moved
            self.conv.to(device)

    def kernels(self, q, k):
        """softmax(Q K~^T), the landmark matrix softmax(Q~ K~^T), its inverse, softmax(Q~ K^T)."""
        m = min(self.method.landmarks, q.shape[-2])
        scale = q.shape[-1] ** -0.25
        q, k = q * scale, k * scale
        q_land, k_land = segment_means(q, m), segment_means(k, m)
        kernel_2 = torch.softmax(q_land @ k_land.transpose(-1, -2), dim=-1)
        inverse = torch.linalg.pinv(kernel_2) if self.method.inverse == "pinv" else \
            iterative_inverse(kernel_2, self.method.iters, self.method.init)
        return (torch.softmax(q @ k_land.transpose(-1, -2), dim=-1), kernel_2, inverse,
                torch.softmax(q_land @ k.transpose(-1, -2), dim=-1))

    def conditioning(self, q, k) -> dict:
        """The landmark matrix and its inverse; the rows of F A^+ B, which should sum to 1 as
        softmax rows do (nothing renormalises them)."""
        kernel_1, kernel_2, inverse, kernel_3 = self.kernels(q, k)
        sums = (kernel_1 @ (inverse @ kernel_3.sum(-1, keepdim=True))).squeeze(-1)
        return {"landmark_matrix": kernel_2, "inverse": inverse, "row_sums": sums,
                "exact_row_sums": torch.ones_like(sums)}

    def forward(self, q, k, v):
        m = min(self.method.landmarks, q.shape[-2])
        scale = q.shape[-1] ** -0.25
        with stage("landmarks"):
            q, k = q * scale, k * scale
            q_land, k_land = segment_means(q, m), segment_means(k, m)
        with stage("kernels"):
            kernel_1 = torch.softmax(q @ k_land.transpose(-1, -2), dim=-1)  # n x m
            kernel_2 = torch.softmax(q_land @ k_land.transpose(-1, -2), dim=-1)  # m x m
            kernel_3 = torch.softmax(q_land @ k.transpose(-1, -2), dim=-1)  # m x n
        with stage("pseudo-inverse"):
            if self.method.inverse == "pinv":
                inverse = torch.linalg.pinv(kernel_2)
            else:
                inverse = iterative_inverse(kernel_2, self.method.iters, self.method.init)
        with stage("products"):
            out = kernel_1 @ (inverse @ (kernel_3 @ v))
        if self.conv is None:
            return out
        with stage("convolution"):
            return out + self.conv(v)


@dataclass(frozen=True)
class Nystromformer(Method):
    """Nystrom approximation of softmax attention with segment-mean landmarks."""

    paper = PAPER
    refusals = {"causal": ("nystromformer's landmarks are segment means over the whole sequence, so every "
                           "output depends on future keys (its paper: encoders only)")}
    stages = ("landmarks", "kernels", "pseudo-inverse", "products", "convolution")  # the last with conv > 0
    landmarks: int = param(64, "m, segment-mean landmarks (official LRA: 64); at most n: more are refused", low=1)
    iters: int = param(6, "Newton-Schulz iterations for the pseudo-inverse", low=0)
    init: str = param("razavi", "iteration start: razavi (paper), original (official code), exact", choices=INIT_RULES)
    inverse: str = param("newton", "newton (as the paper) or pinv (exact SVD, for checking)",
                         choices=("newton", "pinv"))
    conv: int = param(0, "depthwise convolution of V along the sequence, kernel size (LRA: 35); 0 = off", low=0)

    def unsupported(self, shape, mode):
        return self.too_large("landmarks", shape.seq_len, "segment means of n rows") or super().unsupported(shape, mode)

    def build(self, shape, *, device, dtype, generator):
        return NystromAttention(self, shape, device, dtype, generator)

    def conditioning(self, fn, q, k):
        return fn.conditioning(q, k)

    def flops(self, shape: Shape, scores=None) -> float:
        n, p, m = shape.seq_len, shape.head_dim, min(self.landmarks, shape.seq_len)
        kernels = 2 * n * m * p * 2 + 2 * m * m * p  # Q K~^T, Q~ K^T, Q~ K~^T
        assemble = 2 * m * n * p + 2 * m * m * p + 2 * n * m * p
        inverse = inverse_flops(m, self.iters) if self.inverse == "newton" else 0
        return shape.rows * (kernels + assemble + inverse + 2 * n * p * self.conv)

    def scores_computed(self, shape: Shape) -> float:
        m = min(self.landmarks, shape.seq_len)
        return shape.rows * (2 * shape.seq_len * m + m * m)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        n, p, m = shape.seq_len, shape.head_dim, min(self.landmarks, shape.seq_len)
        per_head = 2 * n * p + 2 * n * m + 8 * m * m + 3 * n * p  # scaled q, k; two n x m kernels; out
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
