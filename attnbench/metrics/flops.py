"""FLOPs counted by running one call under torch's FlopCounterMode (multiply-add = 2), beside
the method's analytic formula; a count more than 10% away from the formula is flagged. A call
through FlexAttention cannot be counted (torch 2.13 has no rule for its operator): `flops` stays
empty and `flops_by_op` says why.
`flops_attention` is the part inside the attention calls (all of it at attention scope)."""

from attnbench.metrics import Metric
from attnbench.metrics.display import Column, Panel, fmt_count
from attnbench.metrics.policies import Exact
from attnbench.plan.scopes import SWAP

TOLERANCE = 0.10  # counted vs analytic beyond this sets flops_mismatch


NOT_COUNTED = ("not counted: torch's FlopCounterMode cannot run FlexAttention's operator; flops_analytic counts "
               "the tiles its block mask computes")


def measure(ctx) -> dict:
    from attnbench.measure.flops import count_flops_by_stage

    if not ctx.method.flops_countable():
        return {"flops": None, "flops_attention": None, "flops_by_op": NOT_COUNTED, "flops_mismatch": None,
                "flops_by_stage": None}
    counted, by_op, by_stage = count_flops_by_stage(ctx.call)
    analytic = ctx.row.get("flops_analytic")
    if ctx.case.scope == "attention":
        attention = counted
    elif ctx.case.scope == SWAP:  # the model's own attention modules are not ours to count apart
        attention = None
    else:
        from attnbench.execute.model import attention_flops, mixed_precision

        attention = attention_flops(ctx.attentions, ctx.call, ctx.case.mode, mixed_precision(ctx.case.amp, ctx.device))
    return {"flops": counted, "flops_attention": attention,
            "flops_by_op": "; ".join(f"{op}={n}" for op, n in sorted(by_op.items())),
            "flops_by_stage": "; ".join(f"{name}={n}" for name, n in by_stage.items()),
            "flops_mismatch": None if analytic is None else abs(counted - analytic) > TOLERANCE * analytic}


def _cell(row: dict) -> str:
    if row.get("flops") in (None, "") and str(row.get("flops_by_op") or "").startswith("not counted"):
        return "n/c"
    text = fmt_count(row.get("flops"))
    return f"{text} (!)" if row.get("flops_mismatch") else text


def _legend(rows: list[dict]) -> str:
    marks = []
    if any(row.get("flops_mismatch") is True for row in rows):
        marks.append("(!) more than 10% from the method's formula (flops_analytic)")
    if any(_cell(row) == "n/c" for row in rows if row.get("status") == "ok"):
        marks.append("n/c: not countable (FlexAttention's operator), flops_analytic has the formula's")
    return "FLOPs: counted by running one call, multiply-add = 2" + "".join(f"; {mark}" for mark in marks)


METRIC = Metric(
    column_help={"flops": "FLOPs counted by running one call under FlopCounterMode (multiply-add = 2)",
                 "flops_attention": "the part of flops inside the attention calls (all of it at attention scope)",
                 "flops_mismatch": "flops more than 10% away from flops_analytic",
                 "flops_by_op": "the count per aten operator, or why nothing was counted",
                 "flops_by_stage": "the count per stage of the method (attnbench profile), in the order they ran; "
                                   "'other' holds what ran outside every stage; they sum to flops"},
    types={"flops": int, "flops_attention": int, "flops_mismatch": bool, "flops_by_op": str, "flops_by_stage": str},
    name="flops", order=20, columns=("flops", "flops_attention", "flops_mismatch", "flops_by_op", "flops_by_stage"),
    measure=measure,
    help="FLOPs counted by execution (FlopCounterMode), '(!)' when >10% from the formula",
    compare=Exact("flops"),
    template_imports=("torch._dynamo",),  # FlopCounterMode's module tracker imports it on first use
    table=(Column("FLOPs", sort="flops", cell=_cell, legend=_legend),),
    panels=(Panel("flops", "FLOPs (multiply-add = 2)"),),
)
