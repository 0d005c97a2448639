"""Exact softmax attention (Vaswani et al., 2017, arXiv:1706.03762), two ways.

`full` is what users ship: torch's fused `scaled_dot_product_attention` (flash-style on CPU and
GPU, never holding n x n). `full-explicit` materializes softmax(Q K^T / sqrt(d)) and is the
reference every approximation is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.contract import Capabilities, Method, Shape

PAPER = "Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762"


def explicit_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with the scores materialized (scaling q first keeps one n x n alive)."""
    # One expression, so the raw scores are freed as soon as softmax has read them.
    return torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1) @ v


def _vector_bytes(shape: Shape, itemsize: int) -> int:
    return shape.rows * shape.seq_len * shape.head_dim * itemsize


@dataclass(frozen=True)
class Full(Method):
    """Exact softmax attention through torch.nn.functional.scaled_dot_product_attention."""

    paper = PAPER
    capabilities = Capabilities(exact=True)

    def build(self, shape, *, device, dtype, generator):
        return F.scaled_dot_product_attention

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * shape.seq_len**2 * shape.head_dim  # Q K^T and P V

    def backward_flops(self, shape: Shape, scores=None) -> float:
        # The fused backward recomputes Q K^T, then four gradient matmuls: 2.5x the forward.
        return 10 * shape.rows * shape.seq_len**2 * shape.head_dim

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len**2

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        logsumexp = shape.rows * shape.seq_len * 4  # float32 row statistics kept for backward
        if mode == "forward":
            return _vector_bytes(shape, itemsize) + logsumexp  # the output; tiles are per thread
        return 4 * _vector_bytes(shape, itemsize) + logsumexp  # output and dq, dk, dv


@dataclass(frozen=True)
class FullExplicit(Method):
    """Exact softmax attention that materializes the n x n scores: the error reference."""

    paper = PAPER
    capabilities = Capabilities(exact=True)

    def build(self, shape, *, device, dtype, generator):
        return explicit_softmax_attention

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * shape.seq_len**2 * shape.head_dim

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len**2

    def bytes_moved(self, shape, itemsize, mode, scores=None):
        # Scores written, read by softmax; probabilities written, read by P V. Backward: P read,
        # dP written and read, dS written and read.
        square = shape.rows * shape.seq_len**2 * itemsize
        return super().bytes_moved(shape, itemsize, mode) + (4 if mode == "forward" else 9) * square

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        square = shape.rows * shape.seq_len**2 * itemsize
        vectors = _vector_bytes(shape, itemsize)
        if mode == "forward":
            return 2 * square + vectors  # scores and their softmax alive together, then the output
        # Backward: saved softmax P, its gradient dP and the score gradient dS at once, plus
        # the saved scaled q, the output and the three input gradients.
        return 3 * square + 5 * vectors
