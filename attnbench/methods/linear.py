"""Linear Transformer (Katharopoulos et al., ICML 2020, arXiv:2006.16236).

phi(x) = elu(x) + 1, out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j)):
linear in n, never n x n. Causal (the paper's autoregressive form) by prefix sums of
phi(k_j) v_j^T (attnbench.methods._prefix): a decoder keeps S and z as its recurrent state
(--cache state), and packed documents restart them (--documents). `normalize=reference`
reproduces the mlpen LRA code (used by the Nystromformer and SBM papers' baselines): phi(Q) and
phi(K) each divided by n^(1/4) and no denominator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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

PAPER = ("Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention, "
         "arXiv:2006.16236")


class LinearAttention:
    """fn(q, k, v) of the case's shape; `step` continues from a recurrent state (Linear.recurrent)."""

    def __init__(self, normalize: str, shape: Shape, device) -> None:
        self.normalize, self.causal, self.length, self.queries = normalize, shape.causal, shape.seq_len, shape.q_len
        tables = document_tables(shape, device)
        self.documents = None if tables is None else tables[0]

    def features(self, x):
        phi = F.elu(x)
        # in place when no gradient is taken (elu's backward reads its output): one buffer, not two
        phi = phi + 1 if torch.is_grad_enabled() and x.requires_grad else phi.add_(1)
        # the mlpen code: phi(Q) and phi(K) scaled by the sequence length (the keys') ^ -1/4, no denominator
        return phi if self.normalize == "paper" else phi * self.length ** -0.25

    def products(self, phi_q, phi_k, v, state=None):
        out = feature_attention(phi_q, phi_k, v, causal=self.causal, normalize=self.normalize == "paper", eps=1e-6,
                                state=state, documents=self.documents)
        return out if self.normalize == "paper" else out / self.length ** 0.5

    def __call__(self, q, k, v):
        with stage("feature map"):
            phi_q, phi_k = self.features(q), self.features(k)
        with stage("products"):
            return self.products(phi_q, phi_k, v)

    def prefill(self, k, v):
        return prefix_state(self.features(k), v)

    def step(self, q, k, v, state):
        with stage("feature map"):
            phi_q, phi_k = self.features(q), self.features(k)
        with stage("products"):
            return self.products(phi_q, phi_k, v, state)


@dataclass(frozen=True)
class Linear(Method):
    """Kernelized linear attention with the elu + 1 feature map; causal by prefix sums."""

    paper = PAPER
    capabilities = Capabilities(causal=True, grouped_kv="native", short_query=True, documents=True, recurrent=True)
    stages = ("feature map", "products")
    normalize: str = param("paper", "paper (phi(q).sum phi(k) denominator) or reference (mlpen LRA code)",
                           choices=("paper", "reference"))

    def build(self, shape, *, device, dtype, generator):
        return LinearAttention(self.normalize, shape, device)

    def recurrent(self, fn, k, v):
        prefix = k.shape[-2] - fn.queries
        return StateStep(fn.step, fn.prefill(k[..., :prefix, :], v[..., :prefix, :]), k, v, fn.queries)

    def state_bytes(self, shape, itemsize):
        return state_elements(shape, shape.head_dim) * itemsize

    def flops(self, shape: Shape, scores=None) -> float:
        return feature_flops(shape, shape.head_dim, self.normalize == "paper")

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * keys_read(shape) * shape.head_dim  # feature products, no query-key scores

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        features = (shape.rows * shape.q_len + shape.batch * shape.keys_heads * keys_read(shape)) * shape.head_dim
        return (features + feature_memory(shape, shape.head_dim)) * itemsize * (1 if mode == "forward" else 3)
