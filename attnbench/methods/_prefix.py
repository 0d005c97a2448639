"""Causal kernelized attention by prefix sums (Katharopoulos et al. 2020, section 3.3): query i
sees S_i = sum_{j <= i} phi(k_j) v_j^T and z_i = sum_{j <= i} phi(k_j), never an n x n matrix.

Computed in chunks of CHUNK positions (a shorter query block is one chunk), vectorized over all
chunks at once: the state entering each chunk is an exclusive prefix sum (cumsum) of the chunks'
phi(K)^T V, and inside a chunk the CHUNK x CHUNK products are masked to j <= i. Per head that
holds (n / CHUNK) f x p states and n x CHUNK products (f features, p value width), instead of
the n f p of a per-position cumsum.

The queries are the last q_len positions (a block decoded against the cache): the keys before
them enter as one sum, then the block runs causally over its own keys. That sum is the recurrent
state (`prefix_state`): a decode step from it (--cache state) reads only its block's keys. Grouped
k, v (fewer key heads than query heads) are never repeated: each key head's sums serve its group's
query heads.

Packed documents (`document_attention`): the sums restart at each document's first key. Inside a
chunk the products are masked to the query's document; the state entering a chunk from earlier
chunks (and, bidirectional, from later ones) is a segmented prefix sum over the chunks, computed
in log2(chunks) vectorized steps that only ever add (`segmented_scan`), so a document's state is
never a difference of two long prefix sums.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 64


def feature_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool,
                      normalize: bool = True, eps: float = 0.0, state=None,
                      documents: torch.Tensor | None = None) -> torch.Tensor:
    """out_i = phi(q_i) S / (phi(q_i) . z + eps), S = sum_j phi(k_j) v_j^T and z = sum_j phi(k_j)
    over all keys, or causal: over the keys up to query i (without the division when not
    `normalize`). phi_q (b, h, m, f); phi_k (b, h_kv, n, f) and v (b, h_kv, n, p) with h_kv
    dividing h: grouped keys are never repeated, each key head's S and z serve its group's query
    heads (a broadcast matmul). `state` (prefix_state of the keys before these) adds to the sums;
    `documents` (each position's document, (n,)) keeps every query to its document's keys."""
    b, h, m, f = phi_q.shape
    kv_heads = phi_k.shape[1]
    grouped_q = phi_q.view(b, kv_heads, h // kv_heads, m, f)
    phi_k, v = phi_k.unsqueeze(2), v.unsqueeze(2)  # (b, h_kv, 1, n, .): broadcast over the group
    if documents is not None:
        out = document_attention(grouped_q, phi_k, v, documents, causal=causal, normalize=normalize, eps=eps)
    elif causal:
        out = causal_linear_attention(grouped_q, phi_k, v, normalize=normalize, eps=eps, state=state)
    else:
        sums, total = phi_k.transpose(-1, -2) @ v, phi_k.sum(-2)  # S: (f, p) per key head
        if state is not None:
            sums, total = sums + state[0], total + state[1]
        out = stacked(grouped_q, sums, -3)
        if normalize:
            out = out / (grouped_q @ total.unsqueeze(-1) + eps)
    return out.reshape(b, h, m, out.shape[-1])


def prefix_state(phi_k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrent state of keys phi_k (b, h_kv, n, f), values v: (S, z) as feature_attention adds them."""
    return (phi_k.transpose(-1, -2) @ v).unsqueeze(2), phi_k.sum(-2).unsqueeze(2)


def causal_linear_attention(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, normalize: bool = True,
                            eps: float = 0.0, state=None) -> torch.Tensor:
    """The causal form: phi_q (..., m, f), phi_k (..., n, f), v (..., n, p), m <= n, the leading
    dimensions broadcast (phi_k's and v's may be 1 where phi_q's are a group of query heads).
    Without `state` the first n - m keys enter as one sum; with it (S, z), they are its keys."""
    m, n = phi_q.shape[-2], phi_k.shape[-2]
    if state is None:
        prefix = n - m  # keys every query sees
        state = phi_k[..., :prefix, :].transpose(-1, -2) @ v[..., :prefix, :]  # (f, p)
        total = phi_k[..., :prefix, :].sum(-2)  # (f,)
        phi_k, v = phi_k[..., prefix:, :], v[..., prefix:, :]
    else:
        state, total = state
    size = chunk_size(m)
    pad = -m % size  # padding at the end: later than every real query, so never seen by one
    if pad:
        phi_q, phi_k, v = (F.pad(t, (0, 0, 0, pad)) for t in (phi_q, phi_k, v))
    length = phi_q.shape[-2]
    chunks = length // size

    def in_chunks(t):
        return t.view(*t.shape[:-2], chunks, size, t.shape[-1])

    fq, fk, vc = in_chunks(phi_q), in_chunks(phi_k), in_chunks(v)
    if chunks == 1:  # a short block (a decode step): the state is all that enters
        before, sums_before = state.unsqueeze(-3), total.unsqueeze(-2)
    else:
        chunk_states = fk.transpose(-1, -2) @ vc  # (chunks, f, p) per key head
        before = chunk_states.cumsum(-3) - chunk_states + state.unsqueeze(-3)  # entering each chunk
        chunk_sums = fk.sum(-2)  # (chunks, f)
        sums_before = chunk_sums.cumsum(-2) - chunk_sums + total.unsqueeze(-2)
    within = (fq @ fk.transpose(-1, -2)).tril_()  # (chunks, size, size), j <= i inside the chunk
    out = stacked(fq, before, -4) + within @ vc
    if normalize:
        denominator = (fq @ sums_before.unsqueeze(-1)).squeeze(-1) + within.sum(-1)
        out = out / (denominator.unsqueeze(-1) + eps)
    return out.reshape(*out.shape[:-3], length, out.shape[-1])[..., :m, :]


def stacked(x: torch.Tensor, y: torch.Tensor, group: int) -> torch.Tensor:
    """x @ y where y has size 1 in x's query-group dimension `group` (a key head's state serves its
    group of query heads): the group's rows are stacked into one matmul, since a broadcast matmul
    would copy y once per query head of the group."""
    if x.shape[group] == 1 or y.shape[group] != 1:
        return x @ y
    moved = x.movedim(group, -3)  # (..., g, rows, f): the group beside the rows
    rows = moved.reshape(*moved.shape[:-3], moved.shape[-3] * moved.shape[-2], moved.shape[-1])
    out = rows @ y.squeeze(group)
    return out.view(*moved.shape[:-1], out.shape[-1]).movedim(-3, group)


def chunk_size(queries: int) -> int:
    """CHUNK, or the whole block when it is shorter (a decode step of a few tokens pads nothing)."""
    return min(CHUNK, queries)


def segmented_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x[c] = a[c] x[c - 1] + b[c] along dim -3 of b (x before the first is 0), for a (chunks,) of
    0 and 1: a prefix sum that restarts where a is 0. Hillis-Steele: log2(chunks) steps, each
    combining every element with the one `step` before it; only additions of whole terms."""
    a = a.to(b.dtype).view(-1, 1, 1)
    step = 1
    while step < a.shape[0]:
        b = torch.cat([b[..., :step, :, :], b[..., step:, :, :] + a[step:] * b[..., :-step, :, :]], dim=-3)
        a = torch.cat([a[:step], a[step:] * a[:-step]])
        step *= 2
    return b


def document_attention(phi_q, phi_k, v, documents: torch.Tensor, *, causal: bool, normalize: bool = True,
                       eps: float = 0.0) -> torch.Tensor:
    """feature_attention within packed documents (`documents`: each position's document, (n,)),
    queries and keys the same n positions. The denominators ride along as a column of ones in v."""
    n = phi_q.shape[-2]
    if normalize:
        v = torch.cat([v, v.new_ones(*v.shape[:-1], 1)], dim=-1)
    pad = -n % CHUNK
    if pad:  # padding positions belong to no document
        phi_q, phi_k, v = (F.pad(t, (0, 0, 0, pad)) for t in (phi_q, phi_k, v))
        documents = F.pad(documents, (0, pad), value=-1)
    chunks = phi_q.shape[-2] // CHUNK

    def in_chunks(t):
        return t.view(*t.shape[:-2], chunks, CHUNK, t.shape[-1])

    fq, fk, vc = in_chunks(phi_q), in_chunks(phi_k), in_chunks(v)
    ids = documents.view(chunks, CHUNK)
    first, last = ids[:, :1], ids[:, -1:]
    hidden = ids.unsqueeze(-1) != ids.unsqueeze(-2)  # (chunks, C, C): another document
    if causal:
        hidden |= torch.ones(CHUNK, CHUNK, dtype=torch.bool, device=ids.device).triu_(1)
    out = (fq @ fk.transpose(-1, -2)).masked_fill_(hidden, 0) @ vc
    # The keys before a chunk in the document it starts in: each chunk passes on the keys of its
    # last document, added to what it received when that document fills it.
    whole, goes_on = (first == last).squeeze(-1), (first[1:] == last[:-1]).squeeze(-1)
    tail = (fk * (ids == last).unsqueeze(-1)).transpose(-1, -2) @ vc  # (chunks, f, p) per key head
    carry = torch.cat([whole.new_zeros(1), goes_on & whole[:-1]])
    received = segmented_scan(carry, F.pad(tail[..., :-1, :, :] * goes_on.view(-1, 1, 1), (0, 0, 0, 0, 1, 0)))
    out = out + stacked(fq * (ids == first).unsqueeze(-1), received, -4)
    if not causal:  # and the keys after it in the document it ends in: the same, from the right
        head = (fk * (ids == first).unsqueeze(-1)).transpose(-1, -2) @ vc
        carry = torch.cat([goes_on & whole[1:], whole.new_zeros(1)])
        later = F.pad(head[..., 1:, :, :] * goes_on.view(-1, 1, 1), (0, 0, 0, 0, 0, 1))
        received = segmented_scan(carry.flip(0), later.flip(-3)).flip(-3)
        out = out + stacked(fq * (ids == last).unsqueeze(-1), received, -4)
    out = out.reshape(*out.shape[:-3], chunks * CHUNK, out.shape[-1])[..., :n, :]
    return out[..., :-1] / (out[..., -1:] + eps) if normalize else out


def keys_read(shape) -> int:
    """Key positions a call reads: the block's own from a recurrent state, else all seq_len."""
    return shape.q_len if shape.cache == "state" else shape.seq_len


def feature_flops(shape, features: int, normalize: bool = True) -> int:
    """Matmul FLOPs of feature_attention (multiply-add = 2) on `shape`, phi(q), phi(k) given:
    bidirectional, S per key head and the queries against it; causal, the prefix state (none from
    a recurrent state) and each chunk's state per key head, the queries against the states
    entering their chunks and the masked chunk products (computed whole) per query head; the
    denominators' matvec. Documents: the chunk products, and each chunk's one (causal) or two
    carried states per key head and per query, with the denominators as a column of v."""
    q_rows, kv_rows = shape.rows, shape.batch * shape.keys_heads
    m, n, f, p = shape.q_len, keys_read(shape), features, shape.head_dim
    if shape.documents is not None:
        width, length, sides = p + normalize, -(-m // CHUNK) * CHUNK, 1 if shape.causal else 2
        return kv_rows * sides * 2 * length * f * width + \
            q_rows * (2 * length * CHUNK * (f + width) + sides * 2 * length * f * width)
    if not shape.causal:
        return kv_rows * 2 * n * f * p + q_rows * (2 * m * f * p + (2 * m * f if normalize else 0))
    size = chunk_size(m)
    length = -(-m // size) * size
    chunk_states = 2 * length * f * p if length > size else 0  # one chunk: only the state enters it
    keys = kv_rows * (2 * (n - m) * f * p + chunk_states)  # the prefix and chunk states
    queries = q_rows * (2 * length * f * p + 2 * length * size * (f + p) + (2 * length * f if normalize else 0))
    return keys + queries


def feature_memory(shape, features: int) -> int:
    """Elements alive at the peak of feature_attention beyond phi(q), phi(k): bidirectional, S and
    the output; causal, the chunk states and their prefix sums per key head, the chunk products
    and the output per query head; documents, the carried states and their scan's copies too."""
    q_rows, kv_rows = shape.rows, shape.batch * shape.keys_heads
    m, f, p = shape.q_len, features, shape.head_dim
    length = -(-m // CHUNK) * CHUNK
    if shape.documents is not None:
        sides = 1 if shape.causal else 2
        return kv_rows * 3 * sides * (length // CHUNK) * f * (p + 1) + q_rows * (length * CHUNK + 2 * length * (p + 1))
    if not shape.causal:
        return kv_rows * f * p + q_rows * (m * p + m)
    size = chunk_size(m)
    length = -(-m // size) * size
    # one chunk: the prefix's state alone, or nothing new from a recurrent state
    states = 3 * (length // size) if length > size else 0 if shape.cache == "state" else 1
    return kv_rows * states * f * p + q_rows * (length * size + 2 * length * p)


class StateStep:
    """A decode step from a recurrent state, as fn(q, k, v) on the case's whole k, v: their first
    seq_len - q_len positions were summed into `state` when it was made (outside the timed
    region); a call reads only the block's own keys, the last q_len. Called with other keys or
    values than the state was built from (e.g. a V of another width), it refuses."""

    def __init__(self, step, state, k: torch.Tensor, v: torch.Tensor, queries: int) -> None:
        self.step, self.state, self.prefix = step, state, k.shape[-2] - queries
        self.built_from = (k.data_ptr(), v.data_ptr(), tuple(v.shape))

    def __call__(self, q, k, v):
        if (k.data_ptr(), v.data_ptr(), tuple(v.shape)) != self.built_from:
            raise ValueError("a recurrent state answers only for the keys and values it was built from")
        return self.step(q, k[..., self.prefix:, :], v[..., self.prefix:, :], self.state)


def state_elements(shape, features: int) -> int:
    """Elements of the recurrent state (S, z) of feature_attention: f x p and f per key head."""
    return shape.batch * shape.keys_heads * (features * shape.head_dim + features)
