"""Kernelized attention (Chen et al., NeurIPS 2021, Skyformer paper eq. 3; arXiv:2111.00035).

C_ij = exp(-||q_i - k_j||^2 / (2 sqrt(p))), out = C V with no row normalisation: softmax
attention with the Gaussian kernel in place of exp(q.k / sqrt(p)). O(n^2) on purpose: it is the
exact target that Skyformer approximates. As in the official code, q and k are scaled by
p^(-1/4) so the kernel becomes exp(q'.k' - |q'|^2/2 - |k'|^2/2); the n x n buffer is built in
place, so one n x n tensor is alive at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnbench.methods._linalg import gaussian_kernel
from attnbench.methods.contract import Method, Shape, param, stage

PAPER = "Chen et al. 2021, Skyformer: Remodel Self-Attention with Gaussian Kernel and Nystrom Method, arXiv:2111.00035"


def kernelized_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, normalizer: int = 0) -> torch.Tensor:
    """exp(-|q - k|^2 / (2 sqrt(p))) V, with p = `normalizer` or the head dimension."""
    scale = (normalizer or q.shape[-1]) ** -0.25
    with stage("kernel matrix"):
        kernel = gaussian_kernel(q * scale, k * scale)
    with stage("products"):
        return kernel @ v


@dataclass(frozen=True)
class Kernelized(Method):
    """Exact Gaussian-kernel attention C V (Skyformer's O(n^2) target)."""

    paper = PAPER
    refusals = {"causal": "kernelized attention is Skyformer's exact target, which has no causal form"}
    stages = ("kernel matrix", "products")
    normalizer: int = param(0, "q, k scale p^(-1/4); 0 uses head_dim (Skyformer's normalizer, matched)", low=0)

    def build(self, shape, *, device, dtype, generator):
        if not self.normalizer:
            return kernelized_attention
        return lambda q, k, v: kernelized_attention(q, k, v, self.normalizer)

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * shape.seq_len**2 * shape.head_dim  # q k^T and C V

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len**2

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        square = shape.rows * shape.seq_len**2 * itemsize
        vectors = shape.rows * shape.seq_len * shape.head_dim * itemsize
        if mode == "forward":
            return square + 3 * vectors  # C, the scaled q and k, the output
        return 3 * square + 7 * vectors  # C saved, dC and the score gradient; q', k', out, grads
