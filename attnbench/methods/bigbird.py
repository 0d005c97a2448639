"""BigBird (Zaheer et al., NeurIPS 2020, arXiv:2007.14062), ITC block-sparse attention as in HF's
BigBirdBlockSparseAttention (the Skyformer repo's baseline).

Blocks of `block_size` tokens. The first and last blocks are global: their queries attend to
every key and every query attends to them. Every other query block attends to its sliding
window (blocks i-1, i, i+1) and `random_blocks` random blocks, drawn per head and block row
from the blocks not already attended, once per build from the run's seed (HF fixes the pattern
by seeding numpy on every call). Computed blockwise by gathering key blocks, never n x n; n must
be a multiple of block_size. Not reproduced: HF's "old plan" that, for n in {1024, 3072, 4096},
draws random blocks from the first 1024 tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnbench.methods._blocks import block_attention, block_flops, dense_rows
from attnbench.methods._flex import BACKEND_HELP, FlexAttention, FlexBackend, block_mask, flex_flops, flex_memory_bytes
from attnbench.methods.contract import Method, Shape, param

PAPER = "Zaheer et al. 2020, Big Bird: Transformers for Longer Sequences, arXiv:2007.14062"


def block_pattern(blocks: int, heads: int, random_blocks: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Key blocks of each middle query block, per head: (heads, blocks - 2, 5 + r) ids, a validity
    mask that drops repeats (the window can reach a global block) and missing draws, and the mean
    number of random blocks really drawn (fewer than r when few blocks are left to draw from)."""
    rows = torch.arange(1, blocks - 1)
    fixed = torch.stack([rows - 1, rows, rows + 1, torch.zeros_like(rows), torch.full_like(rows, blocks - 1)], -1)
    taken = torch.zeros(blocks - 2, blocks, dtype=torch.bool).scatter_(1, fixed, True)
    draw = torch.rand(heads, blocks - 2, blocks, generator=generator).masked_fill(taken, -1.0)
    chosen = draw.topk(min(random_blocks, blocks), dim=-1)
    ids = torch.cat([fixed.expand(heads, -1, -1), chosen.indices], dim=-1)
    valid = torch.cat([torch.ones(heads, blocks - 2, 5, dtype=torch.bool), chosen.values >= 0], dim=-1)
    drawn = float((chosen.values >= 0).sum(-1).double().mean())
    ids, order = ids.sort(dim=-1, stable=True)  # a repeat then follows its first, valid copy
    valid = valid.gather(-1, order)
    repeat = torch.cat([torch.zeros_like(ids[..., :1], dtype=torch.bool), ids[..., 1:] == ids[..., :-1]], -1)
    return ids, valid & ~repeat, drawn


class BigBirdAttention:
    def __init__(self, method: "BigBird", shape: Shape, device, generator) -> None:
        self.size, blocks = method.block_size, shape.seq_len // method.block_size
        ids, valid, self.random_blocks_drawn = block_pattern(blocks, shape.heads, method.random_blocks, generator)
        offsets = torch.arange(self.size)
        self.key_index = (ids.unsqueeze(-1) * self.size + offsets).flatten(-2).to(device)  # (h, blocks-2, K)
        self.valid = valid.repeat_interleave(self.size, dim=-1).unsqueeze(-2).to(device)  # (h, blocks-2, 1, K)

    def __call__(self, q, k, v):
        b, h, n, p = q.shape
        s = self.size
        middle = block_attention(q[:, :, s:n - s].reshape(b, h, -1, s, p), k, v, self.key_index, self.valid)
        ends = dense_rows(torch.cat([q[:, :, :s], q[:, :, n - s:]], dim=2), k, v)
        return torch.cat([ends[:, :, :s], middle.reshape(b, h, n - 2 * s, -1), ends[:, :, s:]], dim=2)

    def block_table(self) -> torch.Tensor:
        """(h, blocks, blocks) bool: True where a query block attends a key block."""
        s = self.size
        ids, ok = self.key_index[..., ::s] // s, self.valid[..., 0, ::s]
        heads, blocks = ids.shape[0], ids.shape[1] + 2
        table = torch.zeros(heads, blocks, blocks, dtype=torch.bool, device=ids.device)
        table[:, [0, -1]] = True
        # an invalid entry (a repeat, a missing draw) points at block 0, which every row attends anyway
        table[:, 1:-1].scatter_(-1, torch.where(ok, ids, 0), True)
        return table

    def mask(self, n: int) -> torch.Tensor:
        """(h, n, n) pattern: True where a query attends a key."""
        h, s = self.key_index.shape[0], self.size
        mask = torch.zeros(h, n, n, dtype=torch.bool)
        mask[:, :s], mask[:, n - s:] = True, True
        keys = self.key_index.cpu().repeat_interleave(s, dim=1)  # (h, n - 2s, K)
        valid = self.valid.cpu().squeeze(-2).repeat_interleave(s, dim=1)
        head, row, _ = torch.meshgrid(torch.arange(h), torch.arange(s, n - s), torch.arange(keys.shape[-1]),
                                      indexing="ij")
        mask[head[valid], row[valid], keys[valid]] = True  # repeats are invalid copies: set only valid ones
        return mask


class BigBirdFlex:
    """The same drawn pattern as a FlexAttention block mask: a table lookup per block pair."""

    def __init__(self, name: str, reference: BigBirdAttention, shape: Shape, device) -> None:
        self.reference, self.random_blocks_drawn, s = reference, reference.random_blocks_drawn, reference.size
        table = reference.block_table()

        def attends(b, h, q, k):
            return table[h, q // s, k // s]
        self.block_mask = block_mask(attends, shape, device, per_head=True)
        self.attend = FlexAttention(name, self.block_mask)

    def mask(self, n: int) -> torch.Tensor:
        return self.reference.mask(n)

    def __call__(self, q, k, v):
        return self.attend(q, k, v)


@dataclass(frozen=True)
class BigBird(FlexBackend, Method):
    """Block-sparse attention: sliding window, global and random blocks."""

    paper = PAPER
    refusals = {"causal": "bigbird's block-sparse pattern has no causal form in its reference code (HF refuses "
                          "block_sparse in a decoder): its last block is global and its random blocks come from the "
                          "whole sequence"}
    stages = ("gathers", "block products", "global rows", "flex kernel")  # flex kernel: backend=flex
    extra_columns = ("random_blocks_drawn",)
    column_help = {"random_blocks_drawn": "random key blocks each query block got (fewer than asked when "
                                          "the sequence has too few blocks)"}
    block_size: int = param(64, "tokens per block", low=1)
    random_blocks: int = param(3, "random key blocks per query block; where fewer blocks are left to draw from, "
                               "fewer are drawn and the row's random_blocks_drawn says how many (a mean)", low=0)
    backend: str = param("reference", BACKEND_HELP, choices=("reference", "flex"))

    def unsupported(self, shape, mode):
        if shape.seq_len % self.block_size or shape.seq_len < 3 * self.block_size:
            return f"bigbird needs seq_len a multiple of block_size={self.block_size}, at least 3 blocks"
        return super().unsupported(shape, mode)

    def build(self, shape, *, device, dtype, generator):
        attention = BigBirdAttention(self, shape, device, generator)
        return BigBirdFlex(self.name, attention, shape, device) if self.backend == "flex" else attention

    def diagnostics(self, fn, q, k, v):
        return {"random_blocks_drawn": fn.random_blocks_drawn, **super().diagnostics(fn, q, k, v)}

    def mask(self, fn, q, k):
        return fn.mask(q.shape[-2]).to(q.device).expand(q.shape[0], -1, -1, -1)

    def _keys(self, blocks: int) -> int:
        return (5 + min(self.random_blocks, blocks)) * self.block_size

    def flops(self, shape: Shape, scores=None) -> float | None:
        if self.backend == "flex":
            return flex_flops(shape, scores)
        s, n = self.block_size, shape.seq_len
        blocks = n // s
        return block_flops(shape, blocks - 2, s, self._keys(blocks)) + 4 * shape.rows * 2 * s * n * shape.head_dim

    def scores_computed(self, shape: Shape) -> float | None:
        if self.backend == "flex":
            return None  # the tiles of the block mask: diagnostics counts them
        s, n = self.block_size, shape.seq_len
        return shape.rows * ((n - 2 * s) * self._keys(n // s) + 2 * s * n)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        if self.backend == "flex":
            return flex_memory_bytes(shape, itemsize, mode)
        s, n, p = self.block_size, shape.seq_len, shape.head_dim
        keys = self._keys(n // s)
        per_head = (n // s) * (2 * keys * p + s * keys * 2) + 2 * s * n + 4 * n * p
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
