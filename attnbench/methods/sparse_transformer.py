"""Sparse Transformer (Child et al., 2019, arXiv:1904.10509) factorized patterns, bidirectional.

With stride l, every query attends its own block of l positions (A1) and, by `pattern`:
  fixed:   the last `summary` positions of every block (A2: j mod l >= l - c);
  strided: every position at a multiple of l from it (A2: (i - j) mod l = 0).
One softmax covers A1 and A2 (a key in both counts once). Computed blockwise, never n x n:
fixed gathers each block plus the shared summary columns; strided adds attention among the
positions of equal residue (the sequence viewed as l columns). The paper's patterns are causal;
the benchmarks here are bidirectional, so A1 is the whole block. n must be a multiple of l.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnbench.contract import Method, Shape, param
from attnbench.methods._blocks import block_attention, block_flops
from attnbench.methods._flex import BACKEND_HELP, FlexAttention, FlexBackend, block_mask, flex_flops, flex_memory_bytes

PAPER = "Child et al. 2019, Generating Long Sequences with Sparse Transformers, arXiv:1904.10509"


class FixedPattern:
    def __init__(self, n: int, stride: int, summary: int, device) -> None:
        blocks, c = n // stride, min(summary, stride)
        own = torch.arange(blocks).view(-1, 1) * stride + torch.arange(stride)
        summary_keys = (torch.arange(blocks).view(-1, 1) * stride + torch.arange(stride - c, stride)).flatten()
        self.stride = stride
        self.key_index = torch.cat([own, summary_keys.expand(blocks, -1)], dim=-1).to(device)
        in_own_block = (summary_keys // stride).view(1, -1) == torch.arange(blocks).view(-1, 1)
        own_keys = torch.ones(blocks, stride, dtype=torch.bool)
        self.valid = torch.cat([own_keys, ~in_own_block], -1).unsqueeze(1).to(device)

    def __call__(self, q, k, v):
        b, h, n, p = q.shape
        out = block_attention(q.view(b, h, -1, self.stride, p), k, v, self.key_index, self.valid)
        return out.reshape(b, h, n, p)


def strided_attention(q, k, v, stride: int):
    """One softmax over the query's block (l keys) and its residue column (n / l keys, self once)."""
    b, h, n, p = q.shape
    blocks = n // stride

    def as_blocks(t):  # (block, position in block)
        return t.view(b, h, blocks, stride, -1)

    def as_columns(t):  # (position, block)
        return t.view(b, h, blocks, stride, -1).transpose(2, 3)

    scale = p**-0.5
    local = as_blocks(q) @ as_blocks(k).transpose(-1, -2) * scale  # (b, h, blocks, l, l)
    column = as_columns(q) @ as_columns(k).transpose(-1, -2) * scale  # (b, h, l, blocks, blocks)
    eye = torch.eye(blocks, dtype=torch.bool, device=q.device)
    column = column.masked_fill(eye, -torch.inf).transpose(2, 3)  # self is in the block already
    weights = torch.softmax(torch.cat([local, column], dim=-1), dim=-1)
    out = weights[..., :stride] @ as_blocks(v)
    out_column = weights[..., stride:].transpose(2, 3) @ as_columns(v)  # (b, h, l, blocks, p)
    return (out + out_column.transpose(2, 3)).reshape(b, h, n, -1)


@dataclass(frozen=True)
class SparseTransformer(FlexBackend, Method):
    """Fixed or strided factorized sparse attention, computed blockwise."""

    paper = PAPER
    pattern: str = param("strided", "strided (block + every l-th position; Smart Bird's comparison) or fixed "
                         "(block + summary columns)", choices=("strided", "fixed"))
    stride: int = param(128, "l, block length", low=1)
    summary: int = param(8, "c, summary positions at the end of each block (fixed pattern); at most the stride: "
                         "more are refused", low=1)
    backend: str = param("reference", BACKEND_HELP, choices=("reference", "flex"))

    def unsupported(self, shape, mode):
        if shape.seq_len % self.stride:
            return f"sparse_transformer needs seq_len a multiple of stride={self.stride}"
        if self.pattern == "fixed":
            too_many = self.too_large("summary", self.stride, "a block has stride positions")
            if too_many:
                return too_many
        return super().unsupported(shape, mode)

    def build(self, shape, *, device, dtype, generator):
        if self.backend == "flex":
            return FlexAttention(self.name, block_mask(self._attends(), shape, device, per_head=False))
        if self.pattern == "strided":
            return lambda q, k, v: strided_attention(q, k, v, self.stride)
        return FixedPattern(shape.seq_len, self.stride, self.summary, device)

    def _attends(self):
        """mask_mod(b, h, q, k): whether query q attends key k (tensors of positions broadcast)."""
        stride, summary = self.stride, min(self.summary, self.stride)

        def attends(b, h, q, k):
            same_block = (q // stride) == (k // stride)
            if self.pattern == "strided":
                return same_block | ((q - k) % stride == 0)
            return same_block | (k % stride >= stride - summary)
        return attends

    def mask(self, fn, q, k):
        i = torch.arange(q.shape[-2], device=q.device)
        return self._attends()(None, None, i.view(-1, 1), i.view(1, -1)).expand(*q.shape[:2], -1, -1)

    def _keys(self, shape: Shape) -> int:
        blocks = shape.seq_len // self.stride
        return self.stride + (blocks if self.pattern == "strided" else blocks * min(self.summary, self.stride))

    def flops(self, shape: Shape, scores=None) -> float | None:
        if self.backend == "flex":
            return flex_flops(shape, scores)
        return block_flops(shape, shape.seq_len // self.stride, self.stride, self._keys(shape))

    def scores_computed(self, shape: Shape) -> float | None:
        if self.backend == "flex":
            return None  # the tiles of the block mask: diagnostics counts them
        return shape.rows * shape.seq_len * self._keys(shape)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        if self.backend == "flex":
            return flex_memory_bytes(shape, itemsize, mode)
        n, p, keys = shape.seq_len, shape.head_dim, self._keys(shape)
        gathered = 2 * n // self.stride * keys * p if self.pattern == "fixed" else 0
        per_head = 3 * n * keys + gathered + 2 * n * p
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
