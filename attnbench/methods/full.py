"""Exact softmax attention (Vaswani et al., 2017, arXiv:1706.03762), two ways.

`full` is what users ship: torch's fused `scaled_dot_product_attention` (flash-style on CPU and
GPU, never holding n x n). `full-explicit` materializes softmax(Q K^T / sqrt(d)) and is the
reference every approximation is measured against.

Packed documents run one call per document (what a varlen kernel does in one launch): nothing is
computed across documents. A sliding window and sinks (attnbench.methods.masks) reach SDPA as a
dense bool mask and materialized attention as the scores it masks: both compute every pair of the
keys they read and hide the rest. A decode block under a window reads only the keys its window
and sinks reach (gathered before the call). Soft-capping changes the scores, which SDPA cannot:
`full` refuses it, `full-explicit` caps the scores it holds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnbench.methods import masks
from attnbench.methods.contract import Capabilities, Method, OneStage, Shape, stage

PAPER = "Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762"


def explicit_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hidden: torch.Tensor | None = None,
                               softcap: float | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with the scores materialized (scaling q first keeps one n x n alive).
    Grouped k, v (fewer heads than q) are never copied: the query heads of a group are stacked and
    score their shared keys in one matmul. `hidden` (q_len x seq_len, True where the mask hides a
    key from its query) masks the scores in place: every score is still computed. `softcap` C
    caps the scaled scores to tanh(s / C) * C first."""
    b, h, m, d = q.shape
    kv_heads, n = k.shape[1], k.shape[-2]
    with stage("scores"):
        scores = (q * d**-0.5).reshape(b, kv_heads, h // kv_heads * m, d) @ k.transpose(-2, -1)
        if softcap is not None:
            scores.div_(softcap).tanh_().mul_(softcap)
        if hidden is not None:
            scores.view(b, kv_heads, h // kv_heads, m, n).masked_fill_(hidden, -torch.inf)
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


def gathering(keys: torch.Tensor | None, attend):
    """attend(q, k, v) on the keys at positions `keys` alone (all of them when None): a run of
    consecutive positions (a window without sinks) is a view of the cache, others a copy."""
    if keys is None:
        return attend
    first, count = int(keys[0]), len(keys)
    if int(keys[-1]) - first + 1 == count:
        return lambda q, k, v: attend(q, k.narrow(-2, first, count), v.narrow(-2, first, count))
    return lambda q, k, v: attend(q, k.index_select(-2, keys), v.index_select(-2, keys))


def per_document(shape: Shape, build):
    """fn(q, k, v) over packed documents: `build(document's shape)` run on each document's positions
    in turn (a loop over documents, never over tokens), the outputs joined."""
    edges = [0, *itertools.accumulate(shape.documents)]
    parts = [(slice(a, b), build(document)) for a, b, document in zip(edges, edges[1:], masks.document_shapes(shape))]

    def attend(q, k, v):
        return torch.cat([fn(q[..., at, :], k[..., at, :], v[..., at, :]) for at, fn in parts], dim=-2)
    return attend


def sdpa_attention(shape: Shape, device=None):
    """fn(q, k, v): SDPA with the shape's keywords (SDPA itself for plain self-attention); under a
    window, with its dense mask over the keys it reads; packed documents one by one."""
    if shape.documents is not None:
        return per_document(shape, lambda document: sdpa_attention(document, device))
    if shape.masked:
        keys = masks.visible_keys(shape, device)
        seen = masks.dense(shape, device, keys)
        kwargs = {"enable_gqa": True} if shape.grouped else {}
        if seen is not None:
            kwargs["attn_mask"] = seen
        return gathering(keys, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs))
    kwargs = sdpa_arguments(shape)
    if not kwargs:
        return F.scaled_dot_product_attention
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs)


def _query_bytes(shape: Shape, itemsize: int) -> int:
    return shape.rows * shape.q_len * shape.head_dim * itemsize


def _key_bytes(shape: Shape, itemsize: int) -> int:
    return shape.batch * shape.keys_heads * shape.seq_len * shape.head_dim * itemsize


EXACT = Capabilities(exact=True, causal=True, grouped_kv="native", short_query=True)
MASKED = Capabilities(exact=True, causal=True, grouped_kv="native", short_query=True, window=True, documents=True)
CAPPED = Capabilities(exact=True, causal=True, grouped_kv="native", short_query=True, window=True, documents=True,
                      softcap=True)


def computed_pairs(shape: Shape) -> int:
    """Pairs per (batch, head) a kernel that masks scores computes: every key it reads per query
    (of each document, for packed documents)."""
    if shape.documents is not None:
        return sum(computed_pairs(document) for document in masks.document_shapes(shape))
    return shape.q_len * masks.visible_count(shape)


@dataclass(frozen=True)
class Full(Method):
    """Exact softmax attention through torch.nn.functional.scaled_dot_product_attention."""

    paper = PAPER
    capabilities = MASKED
    refusals = {"softcap": "full runs torch's scaled_dot_product_attention, which cannot change the scores: use "
                           "full-explicit or flex for --softcap (transformers runs soft-capped models eagerly or "
                           "through flex too)"}
    stages = ("fused kernel",)

    def build(self, shape, *, device, dtype, generator):
        return OneStage(sdpa_attention(shape, device), "fused kernel")

    def _pairs(self, shape: Shape) -> int:
        # a fused causal kernel skips the tiles above the diagonal; a dense mask is computed whole
        if shape.documents is not None:
            return sum(self._pairs(document) for document in masks.document_shapes(shape))
        return computed_pairs(shape) if shape.masked else shape.pairs

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * self._pairs(shape) * shape.head_dim  # Q K^T and P V over the pairs it scores

    def backward_flops(self, shape: Shape, scores=None) -> float:
        # The fused backward recomputes Q K^T, then four gradient matmuls: 2.5x the forward.
        return 10 * shape.rows * self._pairs(shape) * shape.head_dim

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * self._pairs(shape)

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        logsumexp = shape.rows * shape.q_len * 4  # float32 row statistics kept for backward
        if shape.documents is not None:  # each document's output, then joined; a window's mask per document
            extra = _query_bytes(shape, itemsize) + sum(masks.mask_bytes(document, itemsize) for document in
                                                        masks.document_shapes(shape) if document.masked)
        else:  # the bool mask and gathered k, v
            extra = masks.mask_bytes(shape, itemsize) if shape.masked else 0
        if mode == "forward":
            return _query_bytes(shape, itemsize) + logsumexp + extra  # the output; tiles are per thread
        return 2 * _query_bytes(shape, itemsize) + 2 * _key_bytes(shape, itemsize) + logsumexp + extra


@dataclass(frozen=True)
class FullExplicit(Method):
    """Exact softmax attention that materializes the n x n scores: the error reference."""

    paper = PAPER
    capabilities = CAPPED
    stages = ("scores", "softmax", "weighted values")

    def build(self, shape, *, device, dtype, generator):
        if shape.documents is not None:
            return per_document(shape, lambda document: self.build(document, device=device, dtype=dtype,
                                                                   generator=generator))
        keys = masks.visible_keys(shape, device)
        seen = masks.dense(shape, device, keys)
        hidden, cap = None if seen is None else ~seen, shape.softcap
        return gathering(keys, lambda q, k, v: explicit_softmax_attention(q, k, v, hidden, cap))

    def flops(self, shape: Shape, scores=None) -> float:
        return 4 * shape.rows * computed_pairs(shape) * shape.head_dim  # the masked scores too

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * computed_pairs(shape)

    def bytes_moved(self, shape, itemsize, mode, scores=None):
        # Scores written, read by softmax; probabilities written, read by P V. Backward: P read,
        # dP written and read, dS written and read.
        square = shape.rows * computed_pairs(shape) * itemsize
        return super().bytes_moved(shape, itemsize, mode) + (4 if mode == "forward" else 9) * square

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        if shape.documents is not None:  # one document at a time, each output kept to be joined
            largest = max(masks.document_shapes(shape), key=computed_pairs)
            return self.memory_bytes(largest, itemsize, mode) + (2 if mode == "forward" else 3) * \
                _query_bytes(shape, itemsize) + sum(masks.mask_bytes(d, itemsize) for d in
                                                    masks.document_shapes(shape) if d.causal or d.masked)
        square = shape.rows * computed_pairs(shape) * itemsize
        mask = masks.mask_bytes(shape, itemsize) if shape.causal or shape.masked else 0  # made at build, kept
        queries, keys = _query_bytes(shape, itemsize), _key_bytes(shape, itemsize)
        if mode == "forward":
            return 2 * square + queries + mask  # scores and their softmax alive together, then the output
        # Backward: saved softmax P, its gradient dP and the score gradient dS at once, plus
        # the saved scaled q, the output, dq and dk, dv.
        return 3 * square + 3 * queries + 2 * keys + mask
