"""Linear Transformer (Katharopoulos et al., ICML 2020, arXiv:2006.16236).

phi(x) = elu(x) + 1, out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j)):
linear in n, never n x n. Causal (the paper's autoregressive form) by prefix sums of
phi(k_j) v_j^T (attnbench.methods._prefix). `normalize=reference` reproduces the mlpen LRA code (used by the
Nystromformer and SBM papers' baselines): phi(Q) and phi(K) each divided by n^(1/4) and no
denominator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from attnbench.methods._prefix import feature_attention, feature_flops, feature_memory
from attnbench.methods.contract import Capabilities, Method, Shape, param, stage

PAPER = ("Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention, "
         "arXiv:2006.16236")


def linear_attention(q, k, v, *, normalize: str = "paper", eps: float = 1e-6, causal: bool = False):
    with stage("feature map"):
        phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    if normalize == "paper":
        with stage("products"):
            return feature_attention(phi_q, phi_k, v, causal=causal, eps=eps)
    # the mlpen code: phi(Q) and phi(K) scaled by the sequence length (the keys') ^ -1/4, no denominator
    with stage("feature map"):
        scale = k.shape[-2] ** -0.25
        phi_q, phi_k = phi_q * scale, phi_k * scale
    with stage("products"):
        return feature_attention(phi_q, phi_k, v, causal=causal, normalize=False) / k.shape[-2] ** 0.5


@dataclass(frozen=True)
class Linear(Method):
    """Kernelized linear attention with the elu + 1 feature map; causal by prefix sums."""

    paper = PAPER
    capabilities = Capabilities(causal=True, grouped_kv="native", short_query=True)
    stages = ("feature map", "products")
    normalize: str = param("paper", "paper (phi(q).sum phi(k) denominator) or reference (mlpen LRA code)",
                           choices=("paper", "reference"))

    def build(self, shape, *, device, dtype, generator):
        return lambda q, k, v: linear_attention(q, k, v, normalize=self.normalize, causal=shape.causal)

    def flops(self, shape: Shape, scores=None) -> float:
        return feature_flops(shape, shape.head_dim, self.normalize == "paper")

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len * shape.head_dim  # feature products, no query-key scores

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        features = (shape.rows * shape.q_len + shape.batch * shape.keys_heads * shape.seq_len) * shape.head_dim
        return (features + feature_memory(shape, shape.head_dim)) * itemsize * (1 if mode == "forward" else 3)
