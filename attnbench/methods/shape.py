"""What one attention call works on: `Shape`, part of the method contract (attnbench.methods.contract).

Besides the tensors' dimensions a shape carries the mask and score options models ship
(docs/decoders.md): causal, a sliding window with attention sinks, packed documents (a
block-diagonal mask) and logit soft-capping, and which cache a decode step reads (the KV cache, or
a method's recurrent state). Which query-key pairs they leave is attnbench.methods.masks; this
module imports nothing of attnbench, and torch only to count a masked shape's pairs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Shape:
    """q is (batch, heads, q_len, head_dim), k and v are (batch, kv_heads, seq_len, head_dim). By
    default q_len = seq_len (self-attention) and kv_heads = heads; with fewer kv heads each group
    of heads / kv_heads query heads shares one key/value head (grouped-query attention). The
    queries are the last q_len positions of the sequence (a block decoded against a KV cache of
    seq_len keys), so a causal query i sees the keys up to position seq_len - q_len + i (the mask
    is aligned to the bottom right).

    The mask options (a query at position p, a key at position j):
    - `window` W: only keys with |p - j| < W (causal: the W keys ending at the query's own
      position, Mistral's and Gemma 2's `sliding_window`);
    - `sinks` S (with a window): the first S keys of the query's document are always seen too
      (StreamingLLM's attention sinks);
    - `documents`: the lengths of documents packed one after another into the sequence; a query
      sees only its own document's keys (a block-diagonal mask; each document starts its own
      window and sinks);
    - `softcap` C: the scaled scores s become tanh(s / C) * C before the mask and softmax (Gemma 2).
    `cache` is what a decode step (q_len < seq_len) reads for the keys before its block: "kv" the
    cached keys and values, "state" a recurrent method's state built from them before the step."""

    batch: int
    heads: int
    seq_len: int
    head_dim: int
    kv_heads: int | None = None  # None: heads
    q_seq_len: int | None = None  # None: seq_len
    causal: bool = False
    window: int | None = None  # None: no sliding window
    sinks: int = 0
    documents: tuple[int, ...] | None = None  # None: one document
    softcap: float | None = None
    cache: str = "kv"

    @property
    def rows(self) -> int:
        """Independent attention problems: batch x (query) heads."""
        return self.batch * self.heads

    @property
    def keys_heads(self) -> int:
        return self.kv_heads or self.heads

    @property
    def q_len(self) -> int:
        return self.q_seq_len or self.seq_len

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.heads // self.keys_heads

    @property
    def grouped(self) -> bool:
        return self.keys_heads != self.heads

    @property
    def short_query(self) -> bool:
        return self.q_len != self.seq_len

    @property
    def windowed(self) -> bool:
        """Whether the window hides any key: one as long as the sequence hides none (a model's
        4096-key window on a shorter input), so any method runs it."""
        return self.window is not None and self.window < self.seq_len

    @property
    def masked(self) -> bool:
        """Whether a window or documents hide pairs beyond the causal mask."""
        return self.windowed or self.documents is not None

    @property
    def pairs(self) -> int:
        """Query-key pairs of one (batch, head) that exact attention scores: q_len x seq_len, or
        those the causal mask, the window, the sinks and the documents leave."""
        n, m = self.seq_len, self.q_len
        if self.masked:
            return pair_count(self)
        return m * (n - m) + m * (m + 1) // 2 if self.causal else m * n

    def per_head(self) -> "Shape":
        """This shape with k and v repeated to every query head."""
        return replace(self, kv_heads=None)


@functools.lru_cache(maxsize=256)
def pair_count(shape: Shape) -> int:
    """Pairs one (batch, head) sees, summed over its query rows in closed form: each row's keys are
    an interval (its document, up to itself when causal), cut to the window, plus the sinks."""
    import torch

    n, m = shape.seq_len, shape.q_len
    p = torch.arange(n - m, n, dtype=torch.int64)
    if shape.documents is None:
        start, end = torch.zeros_like(p), torch.full_like(p, n)
    else:
        lengths = torch.tensor(shape.documents, dtype=torch.int64)
        ends = lengths.cumsum(0)
        doc = torch.searchsorted(ends, p, right=True)
        start, end = ends[doc] - lengths[doc], ends[doc]
    high = p if shape.causal else end - 1

    def size(low, top):
        return (top - low + 1).clamp(min=0)

    if shape.window is None:
        return int(size(start, high).sum())
    w_low, w_high = torch.maximum(start, p - shape.window + 1), torch.minimum(high, p + shape.window - 1)
    s_high = torch.minimum(high, start + shape.sinks - 1)
    both = size(torch.maximum(w_low, start), torch.minimum(w_high, s_high))
    return int((size(w_low, w_high) + size(start, s_high) - both).sum())
