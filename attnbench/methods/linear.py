"""Linear Transformer (Katharopoulos et al., ICML 2020, arXiv:2006.16236).

phi(x) = elu(x) + 1, out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j)):
linear in n, never n x n. `normalize=reference` reproduces the mlpen LRA code (used by the
Nystromformer and SBM papers' baselines): phi(Q) and phi(K) each divided by n^(1/4) and no
denominator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from attnbench.contract import Method, Shape, param

PAPER = ("Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention, "
         "arXiv:2006.16236")


def linear_attention(q, k, v, *, normalize: str = "paper", eps: float = 1e-6):
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    if normalize == "reference":
        scale = q.shape[-2] ** -0.25
        return (phi_q * scale) @ ((phi_k * scale).transpose(-1, -2) @ v) / q.shape[-2] ** 0.5
    context = phi_k.transpose(-1, -2) @ v  # (p, p)
    denominator = phi_q @ phi_k.sum(-2).unsqueeze(-1)  # (n, 1)
    return (phi_q @ context) / (denominator + eps)


@dataclass(frozen=True)
class Linear(Method):
    """Kernelized linear attention with the elu + 1 feature map."""

    paper = PAPER
    normalize: str = param("paper", "paper (phi(q).sum phi(k) denominator) or reference (mlpen LRA code)",
                           choices=("paper", "reference"))

    def build(self, shape, *, device, dtype, generator):
        return lambda q, k, v: linear_attention(q, k, v, normalize=self.normalize)

    def flops(self, shape: Shape, scores=None) -> float:
        n, p = shape.seq_len, shape.head_dim
        denominator = 2 * n * p if self.normalize == "paper" else 0
        return shape.rows * (4 * n * p * p + denominator)

    def scores_computed(self, shape: Shape) -> float:
        return shape.rows * shape.seq_len * shape.head_dim  # feature products, no query-key scores

    def memory_bytes(self, shape, itemsize, mode, scores=None):
        per_head = 3 * shape.seq_len * shape.head_dim + shape.head_dim**2 + shape.seq_len
        return shape.rows * per_head * itemsize * (1 if mode == "forward" else 3)
