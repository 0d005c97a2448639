"""Reformer (Kitaev et al., ICLR 2020, arXiv:2001.04451) LSH attention with shared QK.

Keys are the queries, normalised (shared-QK: the `k` input is not used). Per hash round:
random rotations R (p x buckets/2) hash each position to argmax([xR, -xR]); positions are sorted
by (bucket, position) and cut into chunks of `bucket_size`; each chunk attends to itself and the
chunk before it (cyclically). A query sees itself only if nothing else is there (score -1e5, as
in HF). --causal masks the later keys within the chunks (the paper's and HF's causal LSH
attention). Rounds are combined by their log-sum-exp weights. Buckets default to n / bucket_size
(the paper); `buckets` fixes the count. Rotations are drawn once per build from the run's seed.
n must be a multiple of bucket_size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnbench.methods.contract import Capabilities, Method, Shape, param, stage

PAPER = "Kitaev et al. 2020, Reformer: The Efficient Transformer, arXiv:2001.04451"
SELF_SCORE = -1e5  # HF's self-attention mask value: kept only when a query has nothing else


class LSHAttention:
    def __init__(self, method: "Reformer", shape: Shape, device, dtype, generator) -> None:
        self.size, self.hashes, self.causal = method.bucket_size, method.hashes, shape.causal
        self.buckets = method.buckets or max(1, shape.seq_len // method.bucket_size)
        half = max(1, self.buckets // 2)
        rotations = torch.randn(self.hashes, shape.heads, shape.head_dim, half, generator=generator)
        self.rotations = rotations.to(device, dtype)

    def hash(self, x):
        """(rounds, b, h, n) bucket ids."""
        rotated = torch.einsum("bhnp,rhpc->rbhnc", x, self.rotations)
        if self.buckets == 1:
            return torch.zeros(rotated.shape[:-1], dtype=torch.long, device=x.device)
        return torch.cat([rotated, -rotated], dim=-1)[..., :self.buckets].argmax(-1)

    def __call__(self, q, k, v):
        b, h, n, p = q.shape
        with torch.no_grad(), stage("hashing"):
            buckets = self.hash(q)
        with stage("sort"):
            with torch.no_grad():
                order = (buckets * n + torch.arange(n, device=q.device)).argsort(-1)  # (r, b, h, n)
            sq, sk, sv, kk, vv, position, kpos = self._sorted(q, v, order)
        with stage("chunked attention"):
            return self._attend(sq, kk, vv, position, kpos, order, v.shape[-1])

    def _sorted(self, q, v, order):
        """q, the keys (unit queries), v in bucket order, chunked, with each chunk's look-back."""
        r, b, h, n = order.shape
        keys = torch.nn.functional.normalize(q, dim=-1)
        chunks, size = n // self.size, self.size

        def take(t):
            return t.unsqueeze(0).expand(self.hashes, -1, -1, -1, -1).gather(
                3, order.unsqueeze(-1).expand(-1, -1, -1, -1, t.shape[-1]))

        sq, sk, sv = (take(t).view(self.hashes, b, h, chunks, size, -1) for t in (q, keys, v))
        position = order.view(self.hashes, b, h, chunks, size)

        def look_back(t):
            return torch.cat([t, t.roll(1, dims=3)], dim=4) if chunks > 1 else t

        return sq, sk, sv, look_back(sk), look_back(sv), position, look_back(position)

    def _attend(self, sq, kk, vv, position, kpos, order, width: int):
        """Attention within chunks, unsorted, rounds combined by their normalisers."""
        r, b, h, n = order.shape
        scores = sq @ kk.transpose(-1, -2) * sq.shape[-1] ** -0.5
        scores = scores.masked_fill(position.unsqueeze(-1) == kpos.unsqueeze(-2), SELF_SCORE)
        if self.causal:  # a later key is never seen; itself always is (at SELF_SCORE), so no row is empty
            scores = scores.masked_fill(kpos.unsqueeze(-2) > position.unsqueeze(-1), -torch.inf)
        lse = scores.logsumexp(-1, keepdim=True)
        out = (scores - lse).exp() @ vv  # (r, b, h, chunks, size, p) in sorted order
        undo = order.argsort(-1)
        out = out.view(self.hashes, b, h, n, width).gather(3, undo.unsqueeze(-1).expand(-1, -1, -1, -1, width))
        lse = lse.view(self.hashes, b, h, n, 1).gather(3, undo.unsqueeze(-1))
        weights = torch.softmax(lse, dim=0)  # combine rounds by their normalisers
        return (weights * out).sum(0)


@dataclass(frozen=True)
class Reformer(Method):
    """LSH attention with shared QK: hash, sort, attend within chunks."""

    paper = PAPER
    capabilities = Capabilities(shared_qk=True, causal=True, grouped_kv="no")
    stages = ("hashing", "sort", "chunked attention")
    refusals = {"grouped_kv": "reformer shares queries and keys (its k input is unused), so there are no key heads "
                              "to group",
                "short_query": "reformer hashes the queries as its keys (shared QK): a query block cannot stand "
                               "against a longer cache"}
    hashes: int = param(2, "hash rounds (the seed repos: 2)", low=1)
    bucket_size: int = param(64, "chunk length; also sets buckets = n / bucket_size", low=1)
    buckets: int = param(0, "hash buckets; 0 = n / bucket_size", low=0)

    def unsupported(self, shape, mode):
        if shape.seq_len % self.bucket_size:
            return f"reformer needs seq_len a multiple of bucket_size={self.bucket_size}"
        return super().unsupported(shape, mode)

    def build(self, shape, *, device, dtype, generator):
        return LSHAttention(self, shape, device, dtype, generator)

    def _attention(self, shape: Shape) -> float:
        keys = 2 * self.bucket_size if shape.seq_len > self.bucket_size else self.bucket_size
        return self.hashes * 4 * shape.rows * shape.seq_len * keys * shape.head_dim

    def flops(self, shape: Shape, scores=None) -> float:
        buckets = self.buckets or max(1, shape.seq_len // self.bucket_size)
        hashing = self.hashes * 2 * shape.rows * shape.seq_len * shape.head_dim * max(1, buckets // 2)
        return hashing + self._attention(shape)

    def backward_flops(self, shape: Shape, scores=None) -> float:
        return 2 * self._attention(shape)  # hashing is discrete: no gradient

    def scores_computed(self, shape: Shape) -> float:
        keys = 2 * self.bucket_size if shape.seq_len > self.bucket_size else self.bucket_size
        return self.hashes * shape.rows * shape.seq_len * keys

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        n, p, c = shape.seq_len, shape.head_dim, self.bucket_size
        per_round = 3 * n * p + 4 * n * p + 2 * n * 2 * c + n * p + 3 * n * 8
        return shape.rows * self.hashes * per_round * itemsize * (1 if mode == "forward" else 3)
