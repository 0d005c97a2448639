"""Causal kernelized attention by prefix sums (Katharopoulos et al. 2020, section 3.3): query i
sees S_i = sum_{j <= i} phi(k_j) v_j^T and z_i = sum_{j <= i} phi(k_j), never an n x n matrix.

Computed in chunks of CHUNK positions, vectorized over all chunks at once: the state entering
each chunk is an exclusive prefix sum (cumsum) of the chunks' phi(K)^T V, and inside a chunk the
CHUNK x CHUNK products are masked to j <= i. Per head that holds (n / CHUNK) f x p states and n x
CHUNK products (f features, p value width), instead of the n f p of a per-position cumsum.

The queries are the last q_len positions (a block decoded against the cache): the keys before
them enter as one sum, then the block runs causally over its own keys. Grouped k, v (fewer key
heads than query heads) are never repeated: each key head's sums serve its group's query heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64


def feature_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool,
                      normalize: bool = True, eps: float = 0.0) -> torch.Tensor:
    """out_i = phi(q_i) S / (phi(q_i) . z + eps), S = sum_j phi(k_j) v_j^T and z = sum_j phi(k_j)
    over all keys, or causal: over the keys up to query i (without the division when not
    `normalize`). phi_q (b, h, m, f); phi_k (b, h_kv, n, f) and v (b, h_kv, n, p) with h_kv
    dividing h: grouped keys are never repeated, each key head's S and z serve its group's query
    heads (a broadcast matmul)."""
    b, h, m, f = phi_q.shape
    kv_heads = phi_k.shape[1]
    grouped_q = phi_q.view(b, kv_heads, h // kv_heads, m, f)
    phi_k, v = phi_k.unsqueeze(2), v.unsqueeze(2)  # (b, h_kv, 1, n, .): broadcast over the group
    if causal:
        out = causal_linear_attention(grouped_q, phi_k, v, normalize=normalize, eps=eps)
    else:
        out = grouped_q @ (phi_k.transpose(-1, -2) @ v)  # S: (f, p) per key head
        if normalize:
            out = out / (grouped_q @ phi_k.sum(-2).unsqueeze(-1) + eps)
    return out.reshape(b, h, m, out.shape[-1])


def causal_linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, normalize: bool = True,
                            eps: float = 0.0) -> torch.Tensor:
    """The causal form: phi_q (..., m, f), phi_k (..., n, f), v (..., n, p), m <= n, the leading
    dimensions broadcast (phi_k's and v's may be 1 where phi_q's are a group of query heads)."""
    m, n = phi_q.shape[-2], phi_k.shape[-2]
    prefix = n - m  # keys every query sees
    state = phi_k[..., :prefix, :].transpose(-1, -2) @ v[..., :prefix, :]  # (f, p)
    total = phi_k[..., :prefix, :].sum(-2)  # (f,)
    phi_k, v = phi_k[..., prefix:, :], v[..., prefix:, :]
    pad = -m % CHUNK  # padding at the end: later than every real query, so never seen by one
    if pad:
        phi_q, phi_k, v = (F.pad(t, (0, 0, 0, pad)) for t in (phi_q, phi_k, v))
    length = phi_q.shape[-2]
    chunks = length // CHUNK

    def in_chunks(t):
        return t.view(*t.shape[:-2], chunks, CHUNK, t.shape[-1])

    fq, fk, vc = in_chunks(phi_q), in_chunks(phi_k), in_chunks(v)
    chunk_states = fk.transpose(-1, -2) @ vc  # (chunks, f, p) per key head
    before = chunk_states.cumsum(-3) - chunk_states + state.unsqueeze(-3)  # entering each chunk
    within = (fq @ fk.transpose(-1, -2)).tril_()  # (chunks, C, C), j <= i inside the chunk
    out = fq @ before + within @ vc
    if normalize:
        chunk_sums = fk.sum(-2)  # (chunks, f)
        sums_before = chunk_sums.cumsum(-2) - chunk_sums + total.unsqueeze(-2)
        denominator = (fq @ sums_before.unsqueeze(-1)).squeeze(-1) + within.sum(-1)
        out = out / (denominator.unsqueeze(-1) + eps)
    return out.view(*out.shape[:-3], length, out.shape[-1])[..., :m, :]


def feature_flops(shape, features: int, normalize: bool = True) -> int:
    """Matmul FLOPs of feature_attention (multiply-add = 2) on `shape`, phi(q), phi(k) given:
    bidirectional, S per key head and the queries against it; causal, the prefix state and each
    chunk's state per key head, the queries against the states entering their chunks and the
    masked chunk products (computed whole) per query head; the denominators' matvec."""
    q_rows, kv_rows = shape.rows, shape.batch * shape.keys_heads
    m, n, f, p = shape.q_len, shape.seq_len, features, shape.head_dim
    if not shape.causal:
        return kv_rows * 2 * n * f * p + q_rows * (2 * m * f * p + (2 * m * f if normalize else 0))
    length = -(-m // CHUNK) * CHUNK
    keys = kv_rows * (2 * (n - m) * f * p + 2 * length * f * p)  # the prefix and chunk states
    queries = q_rows * (2 * length * f * p + 2 * length * CHUNK * (f + p) + (2 * length * f if normalize else 0))
    return keys + queries


def feature_memory(shape, features: int) -> int:
    """Elements alive at the peak of feature_attention beyond phi(q), phi(k): bidirectional, S and
    the output; causal, the chunk states and their prefix sums per key head, the chunk products
    and the output per query head."""
    q_rows, kv_rows = shape.rows, shape.batch * shape.keys_heads
    m, f, p = shape.q_len, features, shape.head_dim
    if not shape.causal:
        return kv_rows * f * p + q_rows * (m * p + m)
    length = -(-m // CHUNK) * CHUNK
    return kv_rows * 3 * (length // CHUNK) * f * p + q_rows * (length * CHUNK + 2 * length * p)
