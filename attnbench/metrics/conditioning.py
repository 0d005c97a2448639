"""Conditioning: how hard the case is for an approximation of softmax attention, beside how
wrong the approximation is (the error metric). For every method, the range of the scores
(max |q.k| / sqrt(p)) and how peaked exact softmax attention is (its mean largest weight per row
and its mean row entropy over log n): large scores and peaked rows are where low-rank and
random-feature approximations break. From the method itself (Method.conditioning): a Nystrom
method's landmark matrix (condition number, numerical rank at pinv's cutoff, the inverse's
residual), and, for a method that divides by approximated row sums, those sums against the exact
ones (the smallest ratio, the fractions of rows at or below zero and below half the exact sum).
A figure that does not apply to a method is blank and `cond_not_applicable` says why. Computed on
the case's q, k (exact figures in float64, over blocks of query rows, never n x n at once; the
method's own in the case's dtype)."""

from attnbench.metrics import Metric
from attnbench.metrics.display import Column, fmt_number
from attnbench.metrics.policies import Tolerance

METHOD_COLUMNS = ("cond_landmark_condition", "cond_landmark_rank", "cond_inverse_residual", "cond_row_sum_ratio_min",
                  "cond_row_sums_nonpositive", "cond_row_sums_low")
SCOPE_ONLY = "the conditioning metric reads the case's q and k: use it at --scope attention"
NOT_COVERED = ("not measured: the conditioning figures cover bidirectional self-attention with one key head per "
               "query head (no --causal, --kv-heads or --q-seq)")


def _not_applicable(found: dict) -> str:
    missing = []
    if "cond_landmark_condition" not in found:
        missing.append("no landmark matrix")
    if "cond_row_sum_ratio_min" not in found:
        missing.append("no approximated row sums")
    return "; ".join(missing)


def measure(ctx) -> dict:
    if ctx.case.scope != "attention":
        raise ValueError(SCOPE_ONLY)
    import torch

    from attnbench.measure.conditioning import exact_row_sums, inverse_figures, row_sum_figures, score_figures

    shape = ctx.case.shape
    if shape.causal or shape.grouped or shape.short_query:
        return {**dict.fromkeys(("cond_score_max", "cond_peak_weight_mean", "cond_entropy_fraction",
                                 *METHOD_COLUMNS)), "cond_not_applicable": NOT_COVERED}
    with torch.no_grad():
        q, k = ctx.q.detach(), ctx.k.detach()
        found = score_figures(q, k)
        # the method's own matrices in its own dtype: a float32 inverse has a float32 pinv cutoff
        parts = ctx.method.conditioning(ctx.fn, q, k)
        if "landmark_matrix" in parts:
            found.update(inverse_figures(parts["landmark_matrix"], parts["inverse"]))
        if "row_sums" in parts:
            exact = parts.get("exact_row_sums")
            if exact is None:
                scaled_q, scaled_k, shift = parts["exact_exponents"]
                exact = exact_row_sums(scaled_q, scaled_k, shift=shift)
            found.update(row_sum_figures(parts["row_sums"], exact))
    return {**dict.fromkeys(METHOD_COLUMNS), **found, "cond_not_applicable": _not_applicable(found)}


METRIC = Metric(
    column_help={
        "cond_score_max": "the largest |q.k| / sqrt(head_dim) of the case",
        "cond_peak_weight_mean": "exact softmax attention's largest weight per row, mean over rows (1/n: uniform, "
                                 "1: one key per row)",
        "cond_entropy_fraction": "exact softmax attention's row entropy over log n, mean over rows (1: uniform)",
        "cond_landmark_condition": "Nystrom methods: the landmark matrix's largest condition number over batch and "
                                   "heads",
        "cond_landmark_rank": "Nystrom methods: its smallest numerical rank at pinv's cutoff (m x eps x the largest "
                              "singular value)",
        "cond_inverse_residual": "Nystrom methods: the largest ||I - Z M||_2 of the inverse the method uses",
        "cond_row_sum_ratio_min": "methods that divide by approximated row sums: the smallest approximated / exact "
                                  "row sum (Nystromformer: F A^+ B 1, against 1)",
        "cond_row_sums_nonpositive": "the fraction of rows whose approximated sum is <= 0",
        "cond_row_sums_low": "the fraction of rows whose approximated sum is below half the exact one",
        "cond_not_applicable": "which of the method's figures do not apply to it, and why"},
    name="conditioning", order=55, default=False, measure=measure,
    columns=("cond_score_max", "cond_peak_weight_mean", "cond_entropy_fraction", *METHOD_COLUMNS,
             "cond_not_applicable"),
    types={"cond_landmark_rank": int, "cond_not_applicable": str}, scopes=("attention",), scope_error=SCOPE_ONLY,
    help="score range and peakiness of exact attention; a Nystrom method's landmark conditioning; approximated "
         "row sums against the exact ones",
    compare=Tolerance("cond_score_max", rel=0.01, absolute=1e-9),
    table=(Column("max |score|", sort="cond_score_max", cell=lambda row: fmt_number(row.get("cond_score_max"), ".3g")),
           Column("peak w", sort="cond_peak_weight_mean",
                  cell=lambda row: fmt_number(row.get("cond_peak_weight_mean"), ".3g")),
           Column("cond(M)", sort="cond_landmark_condition",
                  cell=lambda row: fmt_number(row.get("cond_landmark_condition"), ".2g"),
                  needs="cond_landmark_condition"),
           Column("min D~/D", sort="cond_row_sum_ratio_min",
                  cell=lambda row: fmt_number(row.get("cond_row_sum_ratio_min"), ".3g"),
                  needs="cond_row_sum_ratio_min")),
)
