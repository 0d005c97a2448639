"""Informer ProbSparse self-attention (Zhou et al., AAAI 2021, arXiv:2012.07436), bidirectional.

Each query's sparsity M(q) = max_j s_j - sum_j s_j / n is estimated on `factor` * ln n randomly
sampled keys (one sample per query, shared by batch and heads, as Informer2020); the
u = factor * ln n queries with the largest M attend to every key; the others output mean(V),
the non-causal "lazy" context. Linear-log in n. Samples are drawn once per build from the
run's seed. Skyformer's comparison used factor = ceil(128 / ln n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnbench.methods.contract import Method, Shape, param, stage

PAPER = ("Zhou et al. 2021, Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting, "
         "arXiv:2012.07436")


def _top(factor: int, n: int) -> int:
    return min(n, factor * math.ceil(math.log(n)))


class ProbSparseAttention:
    def __init__(self, method: "Informer", shape: Shape, device, generator) -> None:
        n = shape.seq_len
        self.active = _top(method.factor, n)
        self.sample = torch.randint(0, n, (n, _top(method.factor, n)), generator=generator).to(device)

    def __call__(self, q, k, v):
        b, h, n, p = q.shape
        with torch.no_grad(), stage("query sparsity"):  # choosing queries is discrete
            sampled = k[:, :, self.sample]  # (b, h, n, samples, p)
            s = torch.einsum("bhnp,bhnsp->bhns", q, sampled)
            sparsity = s.amax(-1) - s.sum(-1) / n
            top = sparsity.topk(self.active, dim=-1, sorted=False).indices  # (b, h, u)
        with stage("active queries"):
            rows = q.gather(2, top.unsqueeze(-1).expand(-1, -1, -1, p))
            attended = torch.softmax(rows @ k.transpose(-1, -2) * p**-0.5, dim=-1) @ v
        with stage("mean fill"):  # the lazy queries take mean(V)
            width = v.shape[-1]  # values may be wider than queries (V = I gives the effective matrix)
            out = v.mean(dim=2, keepdim=True).expand(b, h, n, width)
            return out.scatter(2, top.unsqueeze(-1).expand(-1, -1, -1, width), attended)


@dataclass(frozen=True)
class Informer(Method):
    """ProbSparse attention: the most 'peaked' queries attend fully, the rest take mean(V)."""

    paper = PAPER
    refusals = {"causal": "informer's decoder (ProbMask) picks its active queries from scores against keys sampled "
                          "over the whole sequence, later ones included, and fills the rest with a cumulative sum "
                          "of V: the choice itself sees the future"}
    stages = ("query sparsity", "active queries", "mean fill")
    factor: int = param(5, "c: c * ln n sampled keys and active queries (Informer default 5)", low=1)

    def build(self, shape, *, device, dtype, generator):
        return ProbSparseAttention(self, shape, device, generator)

    def _active(self, shape: Shape) -> float:
        return 4 * shape.rows * _top(self.factor, shape.seq_len) * shape.seq_len * shape.head_dim

    def flops(self, shape: Shape, scores=None) -> float:
        sampling = 2 * shape.rows * shape.seq_len * _top(self.factor, shape.seq_len) * shape.head_dim
        return sampling + self._active(shape)

    def backward_flops(self, shape: Shape, scores=None) -> float:
        return 2 * self._active(shape)  # query selection runs without gradient

    def scores_computed(self, shape: Shape) -> float:
        top = _top(self.factor, shape.seq_len)
        return shape.rows * (shape.seq_len * top + top * shape.seq_len)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        n, p, top = shape.seq_len, shape.head_dim, _top(self.factor, shape.seq_len)
        per_head = n * top * p + n * top + 2 * top * n + 2 * n * p
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
