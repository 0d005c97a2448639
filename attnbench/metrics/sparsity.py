"""Sparsity: the scores a method computes over those exact attention scores (1 = exact attention).

The denominator is what an exact method of the same shape must score: q_len x seq_len pairs per
head, and under --causal only the pairs at or below the (bottom-right aligned) diagonal, so a
causal fused kernel is 1 and a method that scores every pair and masks half (full-explicit) is
about 2. From the method's formula, or from the draw for data-dependent methods (SBM's sampled edges).
Deterministic for a fixed seed, so `compare` treats any change as a changed algorithm.
"""

from attnbench.metrics import Metric
from attnbench.metrics.display import Column, fmt_number
from attnbench.metrics.policies import Exact


def measure(ctx) -> dict:
    scores, shape = ctx.row.get("scores_computed"), ctx.case.shape
    return {"sparsity": None if scores is None else scores / (shape.rows * shape.pairs)}


METRIC = Metric(
    column_help={"sparsity": "scores_computed / the scores exact attention of the shape computes: q_len x seq_len "
                             "per head, causal: those at or below the diagonal (1 = exact)"},
    name="sparsity", order=10, columns=("sparsity",), measure=measure,
    help="computed scores / the scores of exact attention (n^2; causal: n(n+1)/2), from the formula or the draw",
    compare=Exact("sparsity"),
    # The column keeps its name (reports and baselines hold it); the table says what it holds.
    table=(Column("density", sort="sparsity", cell=lambda row: fmt_number(row.get("sparsity"), ".3g"),
                  legend="density: attention scores computed / exact attention's (1 = every pair; 0.03 = 3% of "
                         "pairs; above 1: pairs scored and then masked)"),),
)
