"""Causal kernelized attention by prefix sums (Katharopoulos et al. 2020, section 3.3): query i
sees S_i = sum_{j <= i} phi(k_j) v_j^T and z_i = sum_{j <= i} phi(k_j), never an n x n matrix.

Computed in chunks of CHUNK positions, vectorized over all chunks at once: the state entering
each chunk is an exclusive prefix sum (cumsum) of the chunks' phi(K)^T V, and inside a chunk the
CHUNK x CHUNK products are masked to j <= i. Per head that holds (n / CHUNK) f x p states and n x
CHUNK products (f features, p value width), instead of the n f p of a per-position cumsum.

The queries are the last q_len positions (a block decoded against the cache): the keys before
them enter as one sum, then the block runs causally over its own keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64


def causal_linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, normalize: bool = True,
                            eps: float = 0.0) -> torch.Tensor:
    """out_i = phi(q_i) S_i / (phi(q_i) . z_i + eps) (without the division when not `normalize`);
    phi_q (b, h, m, f), phi_k (b, h, n, f), v (b, h, n, p), m <= n."""
    m, n = phi_q.shape[-2], phi_k.shape[-2]
    prefix = n - m  # keys every query sees
    state = phi_k[..., :prefix, :].transpose(-1, -2) @ v[..., :prefix, :]  # (f, p)
    total = phi_k[..., :prefix, :].sum(-2)  # (f,)
    phi_k, v = phi_k[..., prefix:, :], v[..., prefix:, :]
    pad = -m % CHUNK  # padding at the end: later than every real query, so never seen by one
    if pad:
        phi_q, phi_k, v = (F.pad(t, (0, 0, 0, pad)) for t in (phi_q, phi_k, v))
    *lead, length, f = phi_q.shape
    chunks = length // CHUNK
    fq, fk = phi_q.view(*lead, chunks, CHUNK, f), phi_k.view(*lead, chunks, CHUNK, f)
    vc = v.view(*lead, chunks, CHUNK, v.shape[-1])
    chunk_states = fk.transpose(-1, -2) @ vc  # (chunks, f, p)
    before = chunk_states.cumsum(-3) - chunk_states + state.unsqueeze(-3)  # entering each chunk
    within = (fq @ fk.transpose(-1, -2)).tril_()  # (chunks, C, C), j <= i inside the chunk
    out = fq @ before + within @ vc
    if normalize:
        chunk_sums = fk.sum(-2)  # (chunks, f)
        sums_before = chunk_sums.cumsum(-2) - chunk_sums + total.unsqueeze(-2)
        denominator = (fq @ sums_before.unsqueeze(-1)).squeeze(-1) + within.sum(-1)
        out = out / (denominator.unsqueeze(-1) + eps)
    return out.view(*lead, length, -1)[..., :m, :]


def causal_flops(rows: int, q_len: int, seq_len: int, features: int, width: int, normalize: bool = True) -> int:
    """Matmul FLOPs of causal_linear_attention (multiply-add = 2): the prefix state, each chunk's
    state, the queries against the states entering their chunks, and the masked chunk products
    (computed whole), plus the denominators' matvec."""
    length = -(-q_len // CHUNK) * CHUNK
    prefix = seq_len - q_len
    per_row = 2 * prefix * features * width + 2 * length * features * width  # states
    per_row += 2 * length * features * width + 2 * length * CHUNK * (features + width)  # queries, chunks
    per_row += 2 * length * features if normalize else 0
    return rows * per_row


def causal_memory(rows: int, q_len: int, features: int, width: int) -> int:
    """Elements alive at the peak of causal_linear_attention: the chunk states and their prefix
    sums, the chunk products and the output, per (batch, head)."""
    length = -(-q_len // CHUNK) * CHUNK
    return rows * (3 * (length // CHUNK) * features * width + length * CHUNK + 2 * length * width)
