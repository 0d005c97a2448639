"""Exact softmax attention (Vaswani et al., 2017, arXiv:1706.03762), two ways.

`full` is what users ship: torch's fused `scaled_dot_product_attention` (flash-style on CPU and
GPU, never holding n x n). `full-explicit` materializes softmax(Q K^T / sqrt(d)) and is the
reference every approximation is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.methods.contract import Capabilities, Method, OneStage, Shape, stage

PAPER = "Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762"


def explicit_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               future: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with the scores materialized (scaling q first keeps one n x n alive).
    Grouped k, v (fewer heads than q) are never copied: the query heads of a group are stacked and
    score their shared keys in one matmul. `future` (q_len x seq_len, True where a key is later
    than its query) masks the scores in place: every score is still computed."""
    b, h, m, d = q.shape
    kv_heads, n = k.shape[1], k.shape[-2]
    with stage("scores"):
        scores = (q * d**-0.5).reshape(b, kv_heads, h // kv_heads * m, d) @ k.transpose(-2, -1)
        if future is not None:
            scores.view(b, kv_heads, h // kv_heads, m, n).masked_fill_(future, -torch.inf)
    with stage("softmax"):  # reads the raw scores and frees them: two n x n alive at most
        weights = torch.softmax(scores, dim=-1)
    with stage("weighted values"):
        return (weights @ v).view(b, h, m, v.shape[-1])


def future_keys(shape: Shape, device) -> torch.Tensor | None:
    """(q_len, seq_len) bool, True where the key comes after the query (queries are the last
    q_len positions); None for a bidirectional shape."""
    if not shape.causal:
        return None
    return torch.ones(shape.q_len, shape.seq_len, dtype=torch.bool, device=device).triu_(
        shape.seq_len - shape.q_len + 1)


def sdpa_arguments(shape: Shape, mask_device=None) -> dict:
    """scaled_dot_product_attention's keywords for the shape: enable_gqa takes grouped k, v as
    they are; causal is `is_causal` for self-attention and, for a query block shorter than the
    keys, torch's lower-right causal bias (is_causal aligns to the top left, which would hide
    the cache from the last queries). That bias picks its own kernel; with `mask_device` the
    mask is a q_len x seq_len bool tensor instead, which a pinned backend runs or refuses."""
    kwargs: dict = {"enable_gqa": True} if shape.grouped else {}
    if shape.causal and shape.short_query:
        # imported here: torch.nn.attention.bias imports torch._dynamo (a second or two per process)
        from torch.nn.attention.bias import causal_lower_right

        kwargs["attn_mask"] = causal_lower_right(shape.q_len, shape.seq_len) if mask_device is None \
            else ~future_keys(shape, mask_device)
    elif shape.causal:
        kwargs["is_causal"] = True
    return kwargs


def sdpa_attention(shape: Shape):
    """fn(q, k, v): SDPA with the shape's keywords (SDPA itself for plain self-attention)."""
    kwargs = sdpa_arguments(shape)
    if not kwargs:
        return F.scaled_dot_product_attention
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs)


def _query_bytes(shape: Shape, itemsize: int) -> int:
    return shape.rows * shape.q_len * shape.head_dim * itemsize


def _key_bytes(shape: Shape, itemsize: int) -> int:
    return shape.batch * shape.keys_heads * shape.seq_len * shape.head_dim * itemsize


EXACT = Capabilities(exact=True, causal=True, grouped_kv="native", short_query=True)


@dataclass(frozen=True)
class Full(Method):
    """Exact softmax attention through torch.nn.functional.scaled_dot_product_attention."""

    paper = PAPER
    capabilities = EXACT
    stages = ("fused kernel",)

    def build(self, shape, *, device, dtype, generator):
        return OneStage(sdpa_attention(shape), "fused kernel")

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * shape.pairs * shape.head_dim  # Q K^T and P V over the pairs it scores

    def backward_flops(self, shape: Shape, scores=None) -> float:
        # The fused backward recomputes Q K^T, then four gradient matmuls: 2.5x the forward.
        return 10 * shape.rows * shape.pairs * shape.head_dim

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.pairs  # a fused causal kernel skips the tiles above the diagonal

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        logsumexp = shape.rows * shape.q_len * 4  # float32 row statistics kept for backward
        if mode == "forward":
            return _query_bytes(shape, itemsize) + logsumexp  # the output; tiles are per thread
        return 2 * _query_bytes(shape, itemsize) + 2 * _key_bytes(shape, itemsize) + logsumexp  # out, dq, dk, dv


@dataclass(frozen=True)
class FullExplicit(Method):
    """Exact softmax attention that materializes the n x n scores: the error reference."""

    paper = PAPER
    capabilities = EXACT
    stages = ("scores", "softmax", "weighted values")

    def build(self, shape, *, device, dtype, generator):
        future = future_keys(shape, device)
        return lambda q, k, v: explicit_softmax_attention(q, k, v, future)

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * shape.q_len * shape.seq_len * shape.head_dim  # the masked scores too

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.q_len * shape.seq_len

    def bytes_moved(self, shape, itemsize, mode, scores=None):
        # Scores written, read by softmax; probabilities written, read by P V. Backward: P read,
        # dP written and read, dS written and read.
        square = shape.rows * shape.q_len * shape.seq_len * itemsize
        return super().bytes_moved(shape, itemsize, mode) + (4 if mode == "forward" else 9) * square

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        square = shape.rows * shape.q_len * shape.seq_len * itemsize
        mask = shape.q_len * shape.seq_len if shape.causal else 0  # bool, made at build and kept
        queries, keys = _query_bytes(shape, itemsize), _key_bytes(shape, itemsize)
        if mode == "forward":
            return 2 * square + queries + mask  # scores and their softmax alive together, then the output
        # Backward: saved softmax P, its gradient dP and the score gradient dS at once, plus
        # the saved scaled q, the output, dq and dk, dv.
        return 3 * square + 3 * queries + 2 * keys + mask
