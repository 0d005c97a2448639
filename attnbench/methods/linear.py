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

from attnbench.contract import Capabilities, Method, Shape, param
from attnbench.methods._prefix import causal_flops, causal_linear_attention, causal_memory

PAPER = ("Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention, "
         "arXiv:2006.16236")


def linear_attention(q, k, v, *, normalize: str = "paper", eps: float = 1e-6, causal: bool = False):
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    if normalize == "reference":  # the mlpen code scales by the sequence length: the keys'
        scale = k.shape[-2] ** -0.25
        phi_q, phi_k = phi_q * scale, phi_k * scale
    if causal:
        out = causal_linear_attention(phi_q, phi_k, v, normalize=normalize == "paper", eps=eps)
        return out if normalize == "paper" else out / k.shape[-2] ** 0.5
    if normalize == "reference":
        return phi_q @ (phi_k.transpose(-1, -2) @ v) / k.shape[-2] ** 0.5
    context = phi_k.transpose(-1, -2) @ v  # (p, p)
    denominator = phi_q @ phi_k.sum(-2).unsqueeze(-1)  # (n, 1)
    return (phi_q @ context) / (denominator + eps)


@dataclass(frozen=True)
class Linear(Method):
    """Kernelized linear attention with the elu + 1 feature map; causal by prefix sums."""

    paper = PAPER
    capabilities = Capabilities(causal=True, short_query=True)
    normalize: str = param("paper", "paper (phi(q).sum phi(k) denominator) or reference (mlpen LRA code)",
                           choices=("paper", "reference"))

    def build(self, shape, *, device, dtype, generator):
        return lambda q, k, v: linear_attention(q, k, v, normalize=self.normalize, causal=shape.causal)

    def flops(self, shape: Shape, scores=None) -> float:
        m, n, p = shape.q_len, shape.seq_len, shape.head_dim
        if shape.causal:
            return causal_flops(shape.rows, m, n, p, p, self.normalize == "paper")
        denominator = 2 * m * p if self.normalize == "paper" else 0
        return shape.rows * (2 * n * p * p + 2 * m * p * p + denominator)

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len * shape.head_dim  # feature products, no query-key scores

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        m, n, p = shape.q_len, shape.seq_len, shape.head_dim
        if shape.causal:
            elements = causal_memory(shape.rows, m, p, p) + shape.rows * (m + n) * p  # and phi(Q), phi(K)
        else:
            elements = shape.rows * ((m + 2 * n) * p + p**2 + m)
        return elements * itemsize * (1 if mode == "forward" else 3)
