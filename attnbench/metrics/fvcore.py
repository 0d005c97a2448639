"""FLOPs as fvcore counts them by tracing one forward call (doubled: fvcore counts a
multiply-add once), with the ops it skipped; a cross-check of the `flops` counter."""

from attnbench.metrics import Metric


def measure(ctx) -> dict:
    if ctx.case.mode != "forward":  # fvcore traces forward only
        return {}
    from attnbench.measure.flops import fvcore_flops

    counted, skipped = fvcore_flops(ctx.fn, *ctx.inputs)
    return {"flops_fvcore": counted, "flops_fvcore_skipped": skipped}


METRIC = Metric(
    column_help={"flops_fvcore": "fvcore's traced forward FLOPs, doubled (fvcore counts a multiply-add once)",
                 "flops_fvcore_skipped": "the operators fvcore skipped"},
    types={"flops_fvcore_skipped": str},
    name="fvcore", order=30, columns=("flops_fvcore", "flops_fvcore_skipped"), measure=measure,
    help="fvcore's traced forward FLOPs x2 and the ops it skipped (a cross-check)",
)
