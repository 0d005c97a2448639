"""Block-sparse attention shared by the fixed-pattern methods (Longformer, BigBird, Sparse
Transformer): each block of queries attends to its own list of key positions, gathered."""

from __future__ import annotations

import torch

from attnbench.methods.contract import stage


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (b, h, n, p), index (..., blocks, K) broadcastable to (b, h, blocks, K) -> (b, h, blocks, K, p)."""
    b, h, n, p = x.shape  # p: this tensor's width (values may be wider than keys)
    index = torch.broadcast_to(index, (b, h, *index.shape[-2:]))
    offsets = torch.arange(b * h, device=x.device).view(b, h, 1, 1) * n
    flat = (index + offsets).reshape(-1)  # index_select: its backward is a single index_add
    return x.reshape(b * h * n, p).index_select(0, flat).view(b, h, *index.shape[-2:], p)


def block_attention(q_blocks: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_index: torch.Tensor,
                    valid: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention of query blocks over gathered keys.

    q_blocks: (b, h, blocks, size, p); key_index: (..., blocks, K) positions in k and v;
    valid: bool, broadcastable to (b, h, blocks, size, K), False for keys a query must not see.
    """
    with stage("gathers"):
        keys, values = gather_rows(k, key_index), gather_rows(v, key_index)
    with stage("block products"):
        scores = q_blocks @ keys.transpose(-1, -2) * q_blocks.shape[-1] ** -0.5
        if valid is not None:
            scores = scores.masked_fill(~valid, -torch.inf)
        return torch.softmax(scores, dim=-1) @ values


def dense_rows(q_rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               hidden: torch.Tensor | None = None) -> torch.Tensor:
    """Exact attention of a few query rows (global tokens) over every key; `hidden` (rows x n,
    True where a key must not be seen, e.g. a later one) masks the scores."""
    with stage("global rows"):
        scores = q_rows @ k.transpose(-1, -2) * q_rows.shape[-1] ** -0.5
        if hidden is not None:
            scores = scores.masked_fill(hidden, -torch.inf)
        return torch.softmax(scores, dim=-1) @ v


def block_flops(shape, query_blocks: int, size: int, keys: int) -> float:
    """Matmul FLOPs of block_attention: scores and weighted values."""
    return 4 * shape.rows * query_blocks * size * keys * shape.head_dim
