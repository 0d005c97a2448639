"""Sparsity: the fraction of the n x n query-key scores a method computes (1 = exact attention).

From the method's formula, or from the draw for data-dependent methods (SBM's sampled edges).
Deterministic for a fixed seed, so `compare` treats any change as a changed algorithm.
"""

from attnbench.compare import Exact
from attnbench.metrics import Metric
from attnbench.render import Column, fmt_number


def measure(ctx) -> dict:
    scores, shape = ctx.row.get("scores_computed"), ctx.case.shape
    return {"sparsity": None if scores is None else scores / (shape.rows * shape.seq_len**2)}


METRIC = Metric(
    column_help={"sparsity": "scores_computed / the n x n scores of exact attention (1 = exact)"},
    name="sparsity", order=10, columns=("sparsity",), measure=measure,
    help="computed scores / n^2 (from the method's formula or its draw)",
    compare=Exact("sparsity"),
    table=(Column("sparsity", lambda row: fmt_number(row.get("sparsity"))),),
)
