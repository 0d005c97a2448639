"""Linformer (Wang et al., 2020, arXiv:2006.04768): keys and values projected along the sequence.

K' = E K and V' = F V with E, F (proj_dim x n) fixed random projections, then
out = softmax(Q K'^T / sqrt(p)) V', linear in n. E, F ~ N(0, 1/proj_dim) per head, drawn from
the run's seed (the Skyformer repo also keeps them fixed; mlpen learns one E shared by layers).
`share=true` uses one matrix for both (the paper's key-value sharing). `projection=identity`
(proj_dim must equal n) makes it exact softmax attention, for checking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnbench.methods.contract import Capabilities, Method, Shape, param, stage

PAPER = "Wang et al. 2020, Linformer: Self-Attention with Linear Complexity, arXiv:2006.04768"


class LinformerAttention:
    def __init__(self, method: "Linformer", shape: Shape, device, dtype, generator) -> None:
        dims = (shape.heads, method.proj_dim, shape.seq_len)
        if method.projection == "identity":
            self.e = self.f = torch.eye(shape.seq_len, device=device, dtype=dtype).expand(dims)
        else:
            def draw():
                return (torch.randn(dims, generator=generator) / method.proj_dim**0.5).to(device, dtype)

            self.e = draw()
            self.f = self.e if method.share else draw()

    def __call__(self, q, k, v):
        with stage("projections"):
            keys, values = self.e @ k, self.f @ v  # (b, h, proj_dim, p)
        with stage("attention"):
            return torch.softmax(q @ keys.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1) @ values


@dataclass(frozen=True)
class Linformer(Method):
    """Softmax attention over keys and values projected to proj_dim along the sequence."""

    paper = PAPER
    capabilities = Capabilities(short_query=True)
    stages = ("projections", "attention")
    refusals = {"causal": "linformer projects the key axis (E mixes all n positions into proj_dim rows), so a query "
                          "cannot be kept from future keys"}
    proj_dim: int = param(256, "k, projected sequence length (Skyformer's comparison: 128)", low=1)
    share: bool = param(False, "one projection for keys and values")
    projection: str = param("gaussian", "gaussian (random, fixed) or identity (needs proj_dim = n; exact)",
                            choices=("gaussian", "identity"))

    def unsupported(self, shape, mode):
        if self.projection == "identity" and self.proj_dim != shape.seq_len:
            return "linformer projection=identity needs proj_dim equal to seq_len"
        return super().unsupported(shape, mode)

    def build(self, shape, *, device, dtype, generator):
        return LinformerAttention(self, shape, device, dtype, generator)

    def _projections(self, shape: Shape) -> float:
        return shape.rows * 4 * self.proj_dim * shape.seq_len * shape.head_dim  # E K, F V

    def _attention(self, shape: Shape) -> float:
        return shape.rows * 4 * self.proj_dim * shape.q_len * shape.head_dim  # Q K'^T, P V'

    def flops(self, shape: Shape, scores=None) -> float:
        return self._projections(shape) + self._attention(shape)

    def backward_flops(self, shape: Shape, scores=None) -> float:
        # E and F are fixed: E K and F V need only the gradient to K and V (one matmul each).
        return self._projections(shape) + 2 * self._attention(shape)

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.q_len * self.proj_dim

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        n, p, kp = shape.q_len, shape.head_dim, self.proj_dim
        per_head = 2 * kp * p + 2 * n * kp + n * p
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
