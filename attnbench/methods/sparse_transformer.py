"""Sparse Transformer (Child et al., 2019, arXiv:1904.10509) factorized patterns, bidirectional.

With stride l, every query attends its own block of l positions (A1) and, by `pattern`:
  fixed:   the last `summary` positions of every block (A2: j mod l >= l - c);
  strided: every position at a multiple of l from it (A2: (i - j) mod l = 0).
One softmax covers A1 and A2 (a key in both counts once). Computed blockwise, never n x n:
fixed gathers each block plus the shared summary columns; strided adds attention among the
positions of equal residue (the sequence viewed as l columns). The paper's patterns are causal;
the benchmarks here are bidirectional, so A1 is the whole block. --causal runs the paper's own
patterns: strided A1 is the l positions before the query (i - l <= j <= i) and A2 every l-th
earlier position; fixed keeps the block up to the query and the summaries of earlier blocks. n
must be a multiple of l.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.methods._blocks import block_attention, block_flops
from attnbench.methods._flex import BACKEND_HELP, FlexAttention, FlexBackend, block_mask, flex_flops, flex_memory_bytes
from attnbench.methods.contract import Capabilities, Method, Shape, param, stage

PAPER = "Child et al. 2019, Generating Long Sequences with Sparse Transformers, arXiv:1904.10509"


class FixedPattern:
    def __init__(self, n: int, stride: int, summary: int, device, causal: bool = False) -> None:
        blocks, c = n // stride, min(summary, stride)
        own = torch.arange(blocks).view(-1, 1) * stride + torch.arange(stride)
        summary_keys = (torch.arange(blocks).view(-1, 1) * stride + torch.arange(stride - c, stride)).flatten()
        self.stride, self.causal = stride, causal
        self.key_index = torch.cat([own, summary_keys.expand(blocks, -1)], dim=-1).to(device)
        key_block, block = (summary_keys // stride).view(1, -1), torch.arange(blocks).view(-1, 1)
        if causal:  # own block up to the query; summaries of earlier blocks only
            own_keys = torch.ones(stride, stride, dtype=torch.bool).tril_().expand(blocks, -1, -1)
            others = (key_block < block).unsqueeze(1).expand(-1, stride, -1)
            self.valid = torch.cat([own_keys, others], -1).to(device)
        else:
            own_keys = torch.ones(blocks, stride, dtype=torch.bool)
            self.valid = torch.cat([own_keys, key_block != block], -1).unsqueeze(1).to(device)

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
    with stage("block products"):  # blocks and columns are views: nothing is gathered
        local = as_blocks(q) @ as_blocks(k).transpose(-1, -2) * scale  # (b, h, blocks, l, l)
        column = as_columns(q) @ as_columns(k).transpose(-1, -2) * scale  # (b, h, l, blocks, blocks)
        eye = torch.eye(blocks, dtype=torch.bool, device=q.device)
        column = column.masked_fill(eye, -torch.inf).transpose(2, 3)  # self is in the block already
        weights = torch.softmax(torch.cat([local, column], dim=-1), dim=-1)
        out = weights[..., :stride] @ as_blocks(v)
        out_column = weights[..., stride:].transpose(2, 3) @ as_columns(v)  # (b, h, l, blocks, p)
        return (out + out_column.transpose(2, 3)).reshape(b, h, n, -1)


def causal_strided_attention(q, k, v, stride: int):
    """The paper's causal strided pattern: the l positions before the query and itself
    (A1: i - l <= j <= i, from its own block and the one before) and every l-th earlier position
    (A2: (i - j) mod l = 0; j = i - l is in A1 and counts once), in one softmax."""
    b, h, n, p = q.shape
    blocks = n // stride

    def as_blocks(t):
        return t.view(b, h, blocks, stride, -1)

    def with_previous(t):  # (blocks, 2l): the block before (zeros before the first) and the block
        t = as_blocks(t)
        return torch.cat([F.pad(t, (0, 0, 0, 0, 1, 0))[:, :, :-1], t], dim=-2)

    def as_columns(t):
        return t.view(b, h, blocks, stride, -1).transpose(2, 3)

    with stage("block products"):
        return _causal_strided(q, k, v, stride, blocks, as_blocks, with_previous, as_columns)


def _causal_strided(q, k, v, stride: int, blocks: int, as_blocks, with_previous, as_columns):
    b, h, n, p = q.shape
    scale = p**-0.5
    position = torch.arange(stride, device=q.device).view(-1, 1)
    key = torch.arange(-stride, stride, device=q.device).view(1, -1)  # relative to the block's start
    window = (key <= position) & (key >= position - stride)  # (l, 2l)
    first = key >= 0  # block 0 has no block before it
    valid = torch.where(torch.arange(blocks, device=q.device).view(-1, 1, 1) == 0, window & first, window)
    local = (as_blocks(q) @ with_previous(k).transpose(-1, -2) * scale).masked_fill(~valid, -torch.inf)
    column = as_columns(q) @ as_columns(k).transpose(-1, -2) * scale  # (b, h, l, blocks, blocks)
    earlier = torch.ones(blocks, blocks, dtype=torch.bool, device=q.device).tril_(-2)  # not in A1
    column = column.masked_fill(~earlier, -torch.inf).transpose(2, 3)
    weights = torch.softmax(torch.cat([local, column], dim=-1), dim=-1)
    out = weights[..., :2 * stride] @ with_previous(v)
    out_column = weights[..., 2 * stride:].transpose(2, 3) @ as_columns(v)
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
    capabilities = Capabilities(causal=True)
    stages = ("gathers", "block products", "flex kernel")  # gathers: the fixed pattern; flex kernel: backend=flex

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
            fn = FlexAttention(self.name, block_mask(self._attends(shape.causal), shape, device, per_head=False))
        elif self.pattern == "strided":
            stride, attention = self.stride, causal_strided_attention if shape.causal else strided_attention

            def fn(q, k, v):
                return attention(q, k, v, stride)
        else:
            return FixedPattern(shape.seq_len, self.stride, self.summary, device, shape.causal)
        fn.causal = shape.causal  # for the mask hook
        return fn

    def _attends(self, causal: bool = False):
        """mask_mod(b, h, q, k): whether query q attends key k (tensors of positions broadcast)."""
        stride, summary = self.stride, min(self.summary, self.stride)

        def attends(b, h, q, k):
            if causal and self.pattern == "strided":  # the paper's: the last l positions, every l-th before
                return (k <= q) & ((q - k <= stride) | ((q - k) % stride == 0))
            same_block = (q // stride) == (k // stride)
            if self.pattern == "strided":
                pattern = same_block | ((q - k) % stride == 0)
            else:
                pattern = same_block | (k % stride >= stride - summary)
            return pattern & (k <= q) if causal else pattern
        return attends

    def mask(self, fn, q, k):
        i = torch.arange(q.shape[-2], device=q.device)
        return self._attends(fn.causal)(None, None, i.view(-1, 1), i.view(1, -1)).expand(*q.shape[:2], -1, -1)

    def _keys(self, shape: Shape) -> int:
        blocks = shape.seq_len // self.stride
        if self.pattern == "strided":  # causal: two blocks of l for A1
            return (2 if shape.causal else 1) * self.stride + blocks
        return self.stride + blocks * min(self.summary, self.stride)

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
