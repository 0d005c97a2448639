"""Which query-key pairs a method computes: the pattern behind its sparsity, as an (h, n, n) array.

Fixed patterns come from the method (BigBird, Longformer, Sparse Transformer), sampled ones from
one draw of its sampler (SBM's graph, Smart Bird's per-head top-k). Methods without a mask
(low-rank and kernel approximations, exact attention) show their effective attention matrix: every listed
method is linear in V once its randomness is fixed, so the output for V = I is that matrix.
"""

from __future__ import annotations

import torch

from attnbench.errors import AttnbenchError
from attnbench.execute.calls import make_inputs
from attnbench.plan.case import make_cases


def attention_pattern(method: str, seq_len: int, params: dict | None = None, *, heads: int = 4,
                      head_dim: int = 64, seed: int = 0, causal: bool = False) -> tuple[torch.Tensor, str]:
    """(pattern (h, n, n) for batch element 0, what it shows) for one case; a method that cannot
    run the case (e.g. --causal for one without a causal form) is a one-line error."""
    (case,) = make_cases([method], [seq_len], {k: [v] for k, v in (params or {}).items()}, heads=heads,
                         head_dim=head_dim, dtype="float64", seed=seed, causal=causal)
    instance, shape = case.instance(), case.shape
    refused = instance.unsupported(shape, "forward")
    if refused:
        raise AttnbenchError(refused)
    q, k, v, generator = make_inputs(case)
    fn = instance.make(shape, device=q.device, dtype=q.dtype, generator=generator)
    with torch.no_grad():
        own, wide_k, _ = instance.hook_view(fn, k)
        mask = instance.mask(own, q, wide_k)
        if mask is not None:
            return mask[0].double(), "attended pairs (fixed pattern or one draw, per head)"
        identity = torch.eye(seq_len, dtype=q.dtype).expand(1, heads, -1, -1)
        return fn(q, k, identity)[0].abs(), "|effective attention matrix| (output for V = I)"


def reference_weights(seq_len: int, *, heads: int = 4, head_dim: int = 64, seed: int = 0,
                      causal: bool = False) -> torch.Tensor:
    """Exact softmax attention weights of head 0 on the same inputs (causal: future keys masked)."""
    (case,) = make_cases(["full"], [seq_len], heads=heads, head_dim=head_dim, dtype="float64", seed=seed)
    q, k, _, _ = make_inputs(case)
    scores = q[0, 0] @ k[0, 0].T / head_dim**0.5
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu_(1), -torch.inf)
    return torch.softmax(scores, dim=-1)
