"""Longformer (Beltagy et al., 2020, arXiv:2004.05150): sliding-window attention plus global tokens.

Every query attends to the keys within `window` / 2 positions on each side and to the first
`global_tokens` positions; those global queries attend to every key. Computed blockwise: query
blocks of window / 2 rows gather the key blocks before, at and after them (1.5x the band,
masked to it exactly; HF's sliding chunks compute 2x), never n x n. Any n works: the last block
is padded and its padding masked. No seed repo ships Longformer; this follows the paper's
pattern and HF's banded computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.contract import Method, Shape, param
from attnbench.methods._blocks import block_attention, block_flops, dense_rows
from attnbench.methods._flex import BACKEND_HELP, FlexAttention, FlexBackend, block_mask, flex_flops, flex_memory_bytes

PAPER = "Beltagy et al. 2020, Longformer: The Long-Document Transformer, arXiv:2004.05150"


class LongformerAttention:
    def __init__(self, method: "Longformer", shape: Shape, device) -> None:
        n = shape.seq_len
        self.half, self.globals = method.window // 2, min(method.global_tokens, n)
        size = self.half
        blocks = -(-n // size)
        self.padded = blocks * size
        start = torch.arange(blocks, device=device).view(blocks, 1) * size
        band = start - size + torch.arange(3 * size, device=device)  # key blocks i-1, i, i+1
        glob = torch.arange(self.globals, device=device).expand(blocks, -1)
        query = (start + torch.arange(size, device=device)).unsqueeze(-1)  # (blocks, size, 1)
        in_band = ((band.unsqueeze(1) - query).abs() <= self.half) & (band >= self.globals).unsqueeze(1) \
            & (band < n).unsqueeze(1) & (band >= 0).unsqueeze(1)  # global keys come from their own columns
        self.key_index = torch.cat([band.clamp(0, self.padded - 1), glob], dim=-1)
        self.valid = torch.cat([in_band, torch.ones(blocks, size, self.globals, dtype=torch.bool, device=device)], -1)

    def __call__(self, q, k, v):
        b, h, n, p = q.shape
        pad = (0, 0, 0, self.padded - n)
        qp, kp, vp = F.pad(q, pad), F.pad(k, pad), F.pad(v, pad)
        out = block_attention(qp.view(b, h, -1, self.half, p), kp, vp, self.key_index, self.valid)
        out = out.reshape(b, h, self.padded, -1)[:, :, :n]
        if self.globals:
            out = torch.cat([dense_rows(q[:, :, :self.globals], k, v), out[:, :, self.globals:]], dim=2)
        return out


@dataclass(frozen=True)
class Longformer(FlexBackend, Method):
    """Sliding-window attention with global tokens, computed blockwise."""

    paper = PAPER
    window: int = param(512, "attention window: window / 2 keys each side (HF attention_window); at most 2n, "
                        "which already reaches every key: a larger window is refused", low=2)
    global_tokens: int = param(1, "leading positions with global attention (e.g. [CLS]); at most n: more are refused",
                               low=0)
    backend: str = param("reference", BACKEND_HELP, choices=("reference", "flex"))

    def unsupported(self, shape, mode):
        n = shape.seq_len
        return (self.too_large("window", 2 * n, "window / 2 = n keys each side reach every key")
                or self.too_large("global_tokens", n, "there are n positions") or super().unsupported(shape, mode))

    def build(self, shape, *, device, dtype, generator):
        if self.backend == "reference":
            return LongformerAttention(self, shape, device)
        half, globals_ = self.window // 2, self.global_tokens

        def attends(b, h, q, k):
            return ((q - k).abs() <= half) | (k < globals_) | (q < globals_)
        return FlexAttention(self.name, block_mask(attends, shape, device, per_head=False))

    def mask(self, fn, q, k):
        i = torch.arange(q.shape[-2], device=q.device)
        near = (i.view(-1, 1) - i.view(1, -1)).abs() <= self.window // 2
        glob = i < self.global_tokens
        return (near | glob.view(1, -1) | glob.view(-1, 1)).expand(*q.shape[:2], -1, -1)

    def flops(self, shape: Shape, scores=None) -> float | None:
        if self.backend == "flex":
            return flex_flops(shape, scores)
        size, n = self.window // 2, shape.seq_len
        blocks, g = -(-n // size), min(self.global_tokens, n)
        return block_flops(shape, blocks, size, 3 * size + g) + 4 * shape.rows * g * n * shape.head_dim

    def scores_computed(self, shape: Shape) -> float | None:
        if self.backend == "flex":
            return None  # the tiles of the block mask: diagnostics counts them
        size, n = self.window // 2, shape.seq_len
        g = min(self.global_tokens, n)
        return shape.rows * (-(-n // size) * size * (3 * size + g) + g * n)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        if self.backend == "flex":
            return flex_memory_bytes(shape, itemsize, mode)
        size, n, p = self.window // 2, shape.seq_len, shape.head_dim
        keys = 3 * size + min(self.global_tokens, n)
        per_head = -(-n // size) * (2 * keys * p + 2 * size * keys) + 4 * n * p
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
