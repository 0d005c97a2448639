"""Performer (Choromanski et al., ICLR 2021, arXiv:2009.14794): FAVOR+ positive orthogonal random
features for the softmax kernel.

phi(x) = exp(w x' - |x'|^2 / 2 - stab) / sqrt(m) (+ eps), x' = x p^(-1/4), with w m orthogonal
Gaussian rows (blocks of QR, rescaled by chi-distributed norms); out = D^-1 phi(Q) (phi(K)^T V),
D = phi(Q) sum_j phi(k_j). Stabilisers as performer-pytorch: the row max for queries, one max
per head for keys. Features are drawn once per build from the run's seed (never redrawn, as in
the seed repos). `kernel=relu` is the generalized ReLU kernel. `scaling=reference` reproduces
the seed repos' double p^(-1/4) scaling (effective logits q.k / p). Causal (the paper's
unidirectional FAVOR+) by prefix sums of phi(k_j) v_j^T (attnbench.methods._prefix), which a
decoder keeps as its recurrent state (--cache state): the key stabiliser is then the running
maximum, and the state rescales when a new key raises it, so a step equals the call over every key.
Packed documents restart the sums (--documents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attnbench.methods._prefix import (
    StateStep,
    feature_attention,
    feature_flops,
    feature_memory,
    keys_read,
    prefix_state,
    state_elements,
)
from attnbench.methods.contract import Capabilities, Method, Shape, param, stage
from attnbench.methods.masks import document_tables

PAPER = "Choromanski et al. 2021, Rethinking Attention with Performers, arXiv:2009.14794"


def orthogonal_gaussian(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """rows x dim: stacked QR-orthogonal blocks, each row rescaled to a Gaussian row's norm."""
    blocks = [torch.linalg.qr(torch.randn(dim, dim, generator=generator))[0].T for _ in range(-(-rows // dim))]
    norms = torch.randn(rows, dim, generator=generator).norm(dim=1, keepdim=True)
    return torch.cat(blocks)[:rows] * norms


class PerformerAttention:
    def __init__(self, method: "Performer", shape: Shape, device, dtype, generator) -> None:
        self.method, self.causal, self.queries = method, shape.causal, shape.q_len
        tables = document_tables(shape, device)
        self.documents = None if tables is None else tables[0]
        self.omega = orthogonal_gaussian(method.features, shape.head_dim, generator).to(device, dtype)
        self.scale = shape.head_dim ** (-0.5 if method.scaling == "reference" else -0.25)
        self.scaled_omega_t = (self.omega * self.scale).T.contiguous()  # x' w^T = x (scale w)^T

    @property
    def eps(self) -> float:
        return 1e-4 * self.method.features ** -0.5

    def features(self, x, is_query: bool, stab=None, eps: bool = True, projected=None):
        """phi(x); keys take one stabiliser per head, their maximum projection unless `stab` is given."""
        projected = x @ self.scaled_omega_t if projected is None else projected  # (b, h, n, m)
        if self.method.kernel == "relu":
            return torch.relu(projected) + 1e-3
        norm = (0.5 * self.scale**2) * x.pow(2).sum(-1, keepdim=True)
        if stab is None:
            stab = projected.amax(-1, keepdim=True) if is_query else projected.amax((-1, -2), keepdim=True)
        # (exp(x' w - |x'|^2 / 2 - stab) + eps) / sqrt(m), with 1 / sqrt(m) folded into the exponent
        # so the n x m features take three passes; sub_ is safe: the matmul keeps no output.
        shift = norm + stab.detach() + 0.5 * math.log(self.method.features)
        features = projected.sub_(shift).exp()
        return features.add(self.eps) if eps else features

    def prefill(self, k, v):
        """The state of keys k: for FAVOR+ the exponentials' sums without eps, the sums eps adds
        to (of v, and the count) and the stabiliser they were taken under."""
        if self.method.kernel == "relu":
            return prefix_state(self.features(k, False), v)
        projected = k @ self.scaled_omega_t
        stab = projected.amax((-1, -2), keepdim=True)  # taken first: features() shifts `projected` in place
        sums, total = prefix_state(self.features(k, False, stab, eps=False, projected=projected), v)
        return sums, total, v.sum(-2).unsqueeze(2).unsqueeze(-2), k.shape[-2], stab

    def step(self, q, k, v, state):
        with stage("feature map"):
            q_features = self.features(q, True)
            if self.method.kernel == "relu":
                k_features, sums = self.features(k, False), state
            else:  # the stabiliser is the running maximum: the state rescales when a new key raises it
                exp_sums, exp_total, value_sums, count, stab = state
                projected = k @ self.scaled_omega_t
                raised = torch.maximum(stab, projected.amax((-1, -2), keepdim=True))
                factor = torch.exp(stab - raised).unsqueeze(2)  # (b, h_kv, 1, 1, 1)
                sums = ((exp_sums * factor).add_(value_sums, alpha=self.eps),
                        (exp_total * factor.squeeze(-1)).add_(self.eps * count))
                k_features = self.features(k, False, raised, projected=projected)
        with stage("products"):
            return feature_attention(q_features, k_features, v, causal=self.causal, state=sums)

    def conditioning(self, q, k) -> dict:
        """FAVOR+'s row sums phi(q) . sum_j phi(k_j) and the exponents of the exact sums
        sum_j exp(q'.k_j') they estimate, in the same scaling (both carry exp(-stab_q - stab_k))."""
        if self.method.kernel != "softmax" or self.causal:
            return {}
        stab_q = (q @ self.scaled_omega_t).amax(-1)
        stab_k = (k @ self.scaled_omega_t).amax((-1, -2)).unsqueeze(-1)
        sums = self.features(q, True) @ self.features(k, False).sum(-2).unsqueeze(-1)
        return {"row_sums": sums.squeeze(-1), "exact_exponents": (q * self.scale, k * self.scale, stab_q + stab_k)}

    def __call__(self, q, k, v):
        # the key stabiliser is one constant per key head: it cancels in the prefix sums too
        with stage("feature map"):
            q_features, k_features = self.features(q, True), self.features(k, False)
        with stage("products"):
            return feature_attention(q_features, k_features, v, causal=self.causal, documents=self.documents)


@dataclass(frozen=True)
class Performer(Method):
    """FAVOR+ random-feature approximation of softmax attention, linear in n."""

    paper = PAPER
    capabilities = Capabilities(causal=True, grouped_kv="native", short_query=True, documents=True, recurrent=True)
    stages = ("feature map", "products")
    features: int = param(256, "m, random features (Skyformer's comparison: 128)", low=1)
    kernel: str = param("softmax", "softmax (FAVOR+) or relu (generalized kernel)", choices=("softmax", "relu"))
    scaling: str = param("paper", "paper (q.k / sqrt(p)) or reference (seed repos' double scaling: q.k / p)",
                         choices=("paper", "reference"))

    def build(self, shape, *, device, dtype, generator):
        return PerformerAttention(self, shape, device, dtype, generator)

    def conditioning(self, fn, q, k):
        return fn.conditioning(q, k)

    def recurrent(self, fn, k, v):
        prefix = k.shape[-2] - fn.queries
        return StateStep(fn.step, fn.prefill(k[..., :prefix, :], v[..., :prefix, :]), k, v, fn.queries)

    def state_bytes(self, shape, itemsize):
        extra = shape.batch * shape.keys_heads * (shape.head_dim + 2) if self.kernel == "softmax" else 0
        return (state_elements(shape, self.features) + extra) * itemsize  # FAVOR+: sum of v, count, stabiliser

    def _projections(self, shape: Shape) -> float:
        positions = shape.rows * shape.q_len + shape.batch * shape.keys_heads * keys_read(shape)
        return 2 * positions * shape.head_dim * self.features  # Q w^T and K w^T (keys once per key head)

    def flops(self, shape: Shape, scores=None) -> float:
        return self._projections(shape) + feature_flops(shape, self.features)

    def backward_flops(self, shape: Shape, scores=None) -> float:
        # w is fixed: the projections need only the gradient to Q and K (one matmul each).
        return 2 * self.flops(shape) - self._projections(shape)

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * (shape.q_len + keys_read(shape)) * self.features  # feature entries of Q and K

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        positions = shape.rows * shape.q_len + shape.batch * shape.keys_heads * keys_read(shape)
        elements = 2 * positions * self.features + feature_memory(shape, self.features)  # projections, features
        if shape.cache == "state" and self.kernel == "softmax":
            elements += state_elements(shape, self.features)  # the state rescaled to the step's stabiliser
        return elements * itemsize * (1 if mode == "forward" else 3)
