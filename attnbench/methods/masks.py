"""Which query-key pairs a shape's mask options leave (attnbench.methods.shape.Shape): causal,
a sliding window with sinks, packed documents. One rule, `allowed`, written in tensor operations
so that the dense masks of SDPA and of materialized attention, FlexAttention's mask_mod and the
tests' references are the same expression (Shape.pairs counts the pairs they leave in closed form).
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from attnbench.methods.shape import Shape


def draw_lengths(seq_len: int, documents: int, seed: int) -> tuple[int, ...]:
    """`documents` lengths that sum to seq_len, drawn from `seed`: the cut points are distinct
    positions drawn uniformly (as a packed batch of documents of random lengths is cut)."""
    if not 1 <= documents <= seq_len:
        raise ValueError(f"{documents} documents do not fit in {seq_len} positions: use 1 to {seq_len}")
    generator = torch.Generator().manual_seed(seed)
    cuts = (torch.randperm(seq_len - 1, generator=generator)[:documents - 1] + 1).sort().values.tolist()
    edges = [0, *cuts, seq_len]
    return tuple(b - a for a, b in zip(edges, edges[1:]))


def document_tables(shape: Shape, device=None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(the document of each position, each position's offset in its document), (seq_len,) int64;
    None for one document."""
    if shape.documents is None:
        return None
    lengths = torch.tensor(shape.documents, dtype=torch.int64, device=device)
    doc = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    starts = lengths.cumsum(0) - lengths
    return doc, torch.arange(shape.seq_len, device=device) - starts[doc]


def document_shapes(shape: Shape) -> list[Shape]:
    """Each packed document as a shape of its own (its window and sinks start with it)."""
    return [dataclasses.replace(shape, seq_len=length, q_seq_len=None, documents=None) for length in shape.documents]


def allowed(shape: Shape, q_pos, k_pos, tables=None):
    """Whether the query at position q_pos sees the key at k_pos (tensors that broadcast; `tables`
    is document_tables(shape)); None when every pair is seen."""
    conditions = []
    if tables is not None:
        doc, _ = tables
        conditions.append(doc[q_pos] == doc[k_pos])
    if shape.causal:
        conditions.append(k_pos <= q_pos)
    if shape.window is not None:
        near = (q_pos - k_pos < shape.window) & (k_pos - q_pos < shape.window)
        if shape.sinks:
            near = near | ((k_pos if tables is None else tables[1][k_pos]) < shape.sinks)
        conditions.append(near)
    if not conditions:
        return None
    return functools.reduce(lambda a, b: a & b, conditions)


def visible_keys(shape: Shape, device=None) -> torch.Tensor | None:
    """For a query block shorter than the keys under a window: the positions of the keys any of
    its queries sees (the sinks, then the window reaching back from the block's first query), which
    a decode step gathers instead of reading the whole cache; None when it sees every key."""
    if not shape.short_query or shape.window is None:
        return None
    n, first = shape.seq_len, shape.seq_len - shape.q_len
    start = max(0, first - shape.window + 1)
    if start <= shape.sinks:
        return None
    return torch.cat([torch.arange(shape.sinks), torch.arange(start, n)]).to(device)


def dense(shape: Shape, device=None, keys: torch.Tensor | None = None) -> torch.Tensor | None:
    """(q_len, keys) bool: the pairs seen, over every key or the positions `keys`; None when all are."""
    n, m = shape.seq_len, shape.q_len
    q_pos = torch.arange(n - m, n, device=device).unsqueeze(-1)
    k_pos = (torch.arange(n, device=device) if keys is None else keys.to(device)).unsqueeze(0)
    seen = allowed(shape, q_pos, k_pos, document_tables(shape, device))
    if seen is None or bool(seen.all()):
        return None
    return seen


def mask_mod(shape: Shape, device=None):
    """FlexAttention's mask_mod(b, h, q_idx, kv_idx) of the shape's mask (queries are the last
    q_len positions); None when every pair is seen."""
    if not (shape.causal or shape.masked):
        return None
    offset, tables = shape.seq_len - shape.q_len, document_tables(shape, device)

    def seen(b, h, q_idx, kv_idx):
        return allowed(shape, q_idx + offset, kv_idx, tables)
    return seen


def visible_count(shape: Shape) -> int:
    """How many keys a call reads: those visible_keys gathers, or all seq_len."""
    if not shape.short_query or shape.window is None:
        return shape.seq_len
    start = max(0, shape.seq_len - shape.q_len - shape.window + 1)
    return shape.seq_len if start <= shape.sinks else shape.sinks + shape.seq_len - start


def mask_bytes(shape: Shape, itemsize: int) -> int:
    """What a dense mask costs a kernel that takes one: the q_len x keys bool mask (made at build,
    kept), and the gathered k and v of a decode block under a window with sinks (without sinks its
    keys are one run of the cache, read in place)."""
    keys = visible_count(shape)
    copied = keys < shape.seq_len and shape.sinks > 0
    gathered = 2 * shape.batch * shape.keys_heads * keys * shape.head_dim * itemsize if copied else 0
    return shape.q_len * keys + gathered
