"""What a swapped method does to a model's outputs (scope swap: attnbench swap), against the
unmodified model in float32 on the same tokens (so a bfloat16 case's error includes what
bfloat16 costs): the relative error of the final hidden states and, for a model with a
language-model head, the KL divergence of its next-token distributions and the change in
perplexity on the tokens. Computed in float64 from one forward of each."""

from attnbench.metrics import Metric
from attnbench.metrics.display import Column, fmt_number
from attnbench.metrics.policies import Tolerance
from attnbench.plan.scopes import SWAP

SCOPE_ONLY = "the swap metric compares a swapped model with the unmodified one: use attnbench swap"


def _perplexity(logits, ids) -> float:
    import torch

    return float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).exp())


def measure(ctx) -> dict:
    if ctx.case.scope != SWAP:
        raise ValueError(SCOPE_ONLY)
    import torch

    swapped, reference = ctx.fn(), ctx.fn.reference
    hidden, exact = swapped.hidden_states[-1].double(), reference.hidden_states[-1].double()
    result = {"swap_hidden_error": float(torch.linalg.vector_norm(hidden - exact) / torch.linalg.vector_norm(exact)),
              "swap_kl_nats": None, "swap_perplexity": None, "swap_perplexity_reference": None}
    logits = getattr(swapped, "logits", None)
    if logits is not None:
        log_p, log_q = reference.logits.double().log_softmax(-1), logits.double().log_softmax(-1)
        ids = ctx.fn.ids
        result.update(swap_kl_nats=float((log_p.exp() * (log_p - log_q)).sum(-1).mean()),
                      swap_perplexity=_perplexity(logits.double(), ids),
                      swap_perplexity_reference=_perplexity(reference.logits.double(), ids))
    return result


METRIC = Metric(
    column_help={"swap_hidden_error": "swap scope: ||h - h_ref|| / ||h_ref|| of the final hidden states against "
                                      "the unmodified model in float32, whatever the case's dtype (Frobenius over "
                                      "every position)",
                 "swap_kl_nats": "swap scope, a model with a language-model head: KL(unmodified || swapped) of "
                                 "the next-token distributions, nats, mean over positions",
                 "swap_perplexity": "swap scope: the swapped model's perplexity on the tokens (next-token)",
                 "swap_perplexity_reference": "the unmodified model's perplexity on the same tokens"},
    name="swap", order=45, default=False, measure=measure,
    columns=("swap_hidden_error", "swap_kl_nats", "swap_perplexity", "swap_perplexity_reference"),
    scopes=(SWAP,), scope_error=SCOPE_ONLY,
    help="swap scope: hidden-state error, next-token KL and perplexity against the unmodified model",
    compare=Tolerance("swap_hidden_error", rel=0.10, absolute=1e-6),
    table=(Column("hidden err", sort="swap_hidden_error",
                  cell=lambda row: fmt_number(row.get("swap_hidden_error"), ".3g")),
           Column("KL", sort="swap_kl_nats", cell=lambda row: fmt_number(row.get("swap_kl_nats"), ".3g"))),
)
