"""Longformer (Beltagy et al., 2020, arXiv:2004.05150): sliding-window attention plus global tokens.

Every query attends to the keys within `window` / 2 positions on each side and to the first
`global_tokens` positions; those global queries attend to every key. Computed blockwise: query
blocks of window / 2 rows gather the key blocks before, at and after them (1.5x the band,
masked to it exactly; HF's sliding chunks compute 2x), never n x n. Any n works: the last block
is padded and its padding masked. No seed repo ships Longformer; this follows the paper's
pattern and HF's banded computation. Causal (the paper's autoregressive setting): the half of
the window before each query and itself, gathered from two blocks; global queries see the
keys up to their own position. A query block shorter than the keys (decoding) gathers only the
keys its window and the global tokens reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.methods._blocks import block_attention, block_flops, dense_rows
from attnbench.methods._flex import BACKEND_HELP, FlexAttention, FlexBackend, block_mask, flex_flops, flex_memory_bytes
from attnbench.methods.contract import Capabilities, Method, Shape, param, stage

PAPER = "Beltagy et al. 2020, Longformer: The Long-Document Transformer, arXiv:2004.05150"


class LongformerAttention:
    def __init__(self, method: "Longformer", shape: Shape, device) -> None:
        n = shape.seq_len
        self.half, self.globals, self.causal = method.window // 2, min(method.global_tokens, n), shape.causal
        size = self.half
        blocks = -(-n // size)
        self.padded = blocks * size
        start = torch.arange(blocks, device=device).view(blocks, 1) * size
        # key blocks i-1, i, i+1; causal: i-1 and i (the band before the query and itself)
        band = start - size + torch.arange((2 if self.causal else 3) * size, device=device)
        glob = torch.arange(self.globals, device=device).expand(blocks, -1)
        query = (start + torch.arange(size, device=device)).unsqueeze(-1)  # (blocks, size, 1)
        offset = query - band.unsqueeze(1)
        near = (offset >= 0) & (offset <= self.half) if self.causal else offset.abs() <= self.half
        in_band = near & (band >= self.globals).unsqueeze(1) \
            & (band < n).unsqueeze(1) & (band >= 0).unsqueeze(1)  # global keys come from their own columns
        self.key_index = torch.cat([band.clamp(0, self.padded - 1), glob], dim=-1)
        self.valid = torch.cat([in_band, torch.ones(blocks, size, self.globals, dtype=torch.bool, device=device)], -1)

    def __call__(self, q, k, v):
        b, h, n, p = q.shape
        pad = (0, 0, 0, self.padded - n)
        with stage("gathers"):  # padding to whole blocks is part of laying the keys out
            qp, kp, vp = F.pad(q, pad), F.pad(k, pad), F.pad(v, pad)
        out = block_attention(qp.view(b, h, -1, self.half, p), kp, vp, self.key_index, self.valid)
        out = out.reshape(b, h, self.padded, -1)[:, :, :n]
        if self.globals:
            glob = q[:, :, :self.globals]
            rows = dense_rows(glob, k, v) if not self.causal else \
                dense_rows(glob, k, v, torch.ones(self.globals, n, dtype=torch.bool, device=q.device).triu_(1))
            with stage("global rows"):
                out = torch.cat([rows, out[:, :, self.globals:]], dim=2)
        return out


class QueryBlock:
    """A block of q_len queries, the last positions, against a cache of n keys: only the keys their
    window and the global tokens reach are gathered (at most q_len + window / 2 + global_tokens;
    every key only when a query is itself global), then one masked softmax: a decode step costs
    the window, not the cache. Grouped k, v are gathered as they are, never repeated: a group's
    query heads are stacked against their shared keys."""

    def __init__(self, method: "Longformer", shape: Shape, device) -> None:
        n, first = shape.seq_len, shape.seq_len - shape.q_len
        half, globals_ = method.window // 2, min(method.global_tokens, shape.seq_len)
        if first < globals_:
            keys = torch.arange(n, device=device)
        else:
            keys = torch.cat([torch.arange(globals_, device=device),
                              torch.arange(max(globals_, first - half), n, device=device)])
        self.key_index, self.causal = keys, shape.causal
        positions = torch.arange(first, n, device=device).view(-1, 1)
        self.hidden = ~method._attends(shape.causal)(None, None, positions, keys.view(1, -1))

    def __call__(self, q, k, v):
        b, h, m, p = q.shape
        kv_heads = k.shape[1]
        with stage("gathers"):
            keys, values = k.index_select(2, self.key_index), v.index_select(2, self.key_index)
        with stage("block products"):
            scores = (q * p**-0.5).reshape(b, kv_heads, h // kv_heads * m, p) @ keys.transpose(-1, -2)
            scores.view(b, kv_heads, h // kv_heads, m, -1).masked_fill_(self.hidden, -torch.inf)
            return (torch.softmax(scores, dim=-1) @ values).view(b, h, m, values.shape[-1])


@dataclass(frozen=True)
class Longformer(FlexBackend, Method):
    """Sliding-window attention with global tokens, computed blockwise."""

    paper = PAPER
    window: int = param(512, "attention window: window / 2 keys each side (HF attention_window); at most 2n, "
                        "which already reaches every key: a larger window is refused", low=2)
    global_tokens: int = param(1, "leading positions with global attention (e.g. [CLS]); at most n: more are refused",
                               low=0)
    backend: str = param("reference", BACKEND_HELP, choices=("reference", "flex"))
    capabilities = Capabilities(causal=True, short_query=True)
    stages = ("gathers", "block products", "global rows", "flex kernel")  # flex kernel: backend=flex
    refusals = {"window": "longformer's window is its own parameter: -p window=w sees the w / 2 keys on each side "
                          "(before it, when causal) and itself, --window w/2 + 1 of the exact methods; its global "
                          "tokens are keys every query sees, as --sinks are, and also queries that see every key"}

    def unsupported(self, shape, mode):
        n = shape.seq_len
        return (self.too_large("window", 2 * n, "window / 2 = n keys each side reach every key")
                or self.too_large("global_tokens", n, "there are n positions") or super().unsupported(shape, mode))

    def build(self, shape, *, device, dtype, generator):
        if self.backend == "reference":
            return QueryBlock(self, shape, device) if shape.short_query else LongformerAttention(self, shape, device)
        attends, offset = self._attends(shape.causal), shape.seq_len - shape.q_len

        def at_positions(b, h, q, k):  # the block mask indexes queries from 0: their positions are offset
            return attends(b, h, q + offset, k)
        fn = FlexAttention(self.name, block_mask(at_positions if offset else attends, shape, device, per_head=False))
        fn.causal = shape.causal  # for the mask hook
        return fn

    def _attends(self, causal: bool):
        """mask_mod(b, h, q, k): the window (causal: its half before the query), global keys and queries."""
        half, globals_ = self.window // 2, self.global_tokens

        def attends(b, h, q, k):
            pattern = ((q - k).abs() <= half) | (k < globals_) | (q < globals_)
            return pattern & (k <= q) if causal else pattern
        return attends

    def mask(self, fn, q, k):
        n = k.shape[-2]
        keys, queries = torch.arange(n, device=q.device), torch.arange(n - q.shape[-2], n, device=q.device)
        return self._attends(fn.causal)(None, None, queries.view(-1, 1), keys.view(1, -1)).expand(*q.shape[:2], -1, -1)

    def kv_grouping(self, shape: Shape) -> str:
        return "native" if shape.short_query and self.backend == "reference" else "repeat"

    def _block_keys(self, shape: Shape) -> int:
        """Keys a short query block gathers (QueryBlock)."""
        n, first, g = shape.seq_len, shape.seq_len - shape.q_len, min(self.global_tokens, shape.seq_len)
        return n if first < g else g + n - max(g, first - self.window // 2)

    def _band(self, shape: Shape) -> int:
        """Keys each query block gathers from the band: three blocks of window / 2, two when causal."""
        return (2 if shape.causal else 3) * (self.window // 2)

    def flops(self, shape: Shape, scores=None) -> float | None:
        if self.backend == "flex":
            return flex_flops(shape, scores)
        if shape.short_query:
            return 4 * shape.rows * shape.q_len * self._block_keys(shape) * shape.head_dim
        size, n = self.window // 2, shape.seq_len
        blocks, g = -(-n // size), min(self.global_tokens, n)
        return block_flops(shape, blocks, size, self._band(shape) + g) + 4 * shape.rows * g * n * shape.head_dim

    def scores_computed(self, shape: Shape) -> float | None:
        if self.backend == "flex":
            return None  # the tiles of the block mask: diagnostics counts them
        if shape.short_query:
            return shape.rows * shape.q_len * self._block_keys(shape)
        size, n = self.window // 2, shape.seq_len
        g = min(self.global_tokens, n)
        return shape.rows * (-(-n // size) * size * (self._band(shape) + g) + g * n)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        if self.backend == "flex":
            return flex_memory_bytes(shape, itemsize, mode)
        if shape.short_query:  # the gathered keys and values (per key head), scores and weights, the output
            keys, m, p = self._block_keys(shape), shape.q_len, shape.head_dim
            elements = shape.batch * shape.keys_heads * 2 * keys * p + shape.rows * (2 * m * keys + m * p)
            return elements * itemsize * (1 if mode == "forward" else 3)
        size, n, p = self.window // 2, shape.seq_len, shape.head_dim
        keys = self._band(shape) + min(self.global_tokens, n)
        per_head = -(-n // size) * (2 * keys * p + 2 * size * keys) + 4 * n * p
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
