"""Approximation error: relative spectral and Frobenius errors of the output against an exact
method (`--reference`, float64), the effective attention matrix's spectral error (dense up to
n = 1024, matrix-free above), and, for a method with its own exact target (Skyformer:
kernelized attention), the error against that target; mean and std over `--repeats` draws."""

from attnbench.metric import Column, Metric, Tolerance, fmt_number

SCOPE_ONLY = "the error metric compares attention outputs with exact attention: use it at --scope attention"


def measure(ctx) -> dict:
    if ctx.case.scope != "attention":
        raise ValueError(SCOPE_ONLY)
    import torch

    from attnbench.measure.error import case_errors

    with torch.no_grad():  # the matrix-free estimate turns gradients on where it needs them
        return case_errors(ctx.case, ctx.method, ctx.q.detach(), ctx.k.detach(), ctx.v.detach(),
                           reference=ctx.options.reference, repeats=ctx.options.repeats)


METRIC = Metric(
    name="error", order=50, default=False, measure=measure,
    columns=("error_reference", "error_spectral", "error_spectral_std", "error_frobenius",
             "error_attention_spectral", "error_target", "error_target_spectral", "error_target_spectral_std"),
    help="relative spectral/Frobenius error against --reference in float64, for --repeats draws",
    compare=Tolerance("error_spectral", rel=0.10, absolute=1e-6),
    table=(Column("error", lambda row: fmt_number(row.get("error_spectral"), ".3g")),),
)
