"""Quality at a cost: train the case's model (the LRA encoder around the method's attention) on
its generated task for a budget and score it on held-out examples (attnbench train). The FLOPs
and peak memory of one training step come from the flops and memory passes on the same model."""

from attnbench.errors import AttnbenchError
from attnbench.metrics import Metric
from attnbench.metrics.display import Column, fmt_number
from attnbench.metrics.policies import Tolerance
from attnbench.plan.options import Option
from attnbench.plan.values import Duration, Number, Whole, parse_seconds

DEFAULT_STEPS, DEFAULT_LR, HELD_OUT, CHECKPOINTS = 1000, 1e-3, 1000, 4


class Seconds(Duration):
    """A duration read as positive seconds as soon as it is given (a bad one fails before anything runs)."""

    kind = "a positive duration such as \"60s\" or \"5m\""

    def parse(self, text, flag: str):
        return parse_seconds(text, flag)

    def check(self, value):
        try:
            return parse_seconds(super().check(value))
        except AttnbenchError:
            raise ValueError from None


def _budget(options):
    from attnbench.execute.training import Budget

    budget = Budget(options.setting("steps"), options.setting("examples"), options.setting("train_time"))
    return budget if budget.describe() else Budget(DEFAULT_STEPS)


def measure(ctx) -> dict:
    from attnbench.execute.training import train

    figures = train(ctx.case, ctx.method, _budget(ctx.options), lr=float(ctx.options.setting("lr", DEFAULT_LR)),
                    held_out_examples=ctx.options.setting("held_out", HELD_OUT),
                    checkpoints=ctx.options.setting("checkpoints", CHECKPOINTS), device=ctx.device,
                    dtype=ctx.fn.classifier.weight.dtype, partial=ctx.row)
    flops = ctx.row.get("flops")
    return {**figures, "train_flops": None if flops is None else flops * figures["train_steps"]}


def check(cases: list, options) -> None:
    """Training cases only: a task, at model scope, in train mode."""
    for case in cases:
        if not case.train_task or case.mode != "train":
            raise AttnbenchError("the train metric trains a model on a generated task: use attnbench train --task "
                                 "mqar|mqar-bidirectional|listops (or give train_task and mode = \"train\")")


TRAINING = ("train", "sweep")
OPTIONS = (
    Option("steps", "Train: optimizer steps per case (the budget; with --examples or --train-time the first reached "
           "ends training).", Whole(phrase="a positive integer: training steps"), "metric", commands=TRAINING,
           default=str(DEFAULT_STEPS) + " when no budget is given"),
    Option("examples", "Train: training examples per case (steps = examples / batch).",
           Whole(phrase="a positive integer: training examples"), "metric", commands=TRAINING),
    Option("train_time", "Train: seconds of training steps per case, e.g. 60s or 5m (the learning rate stays flat "
           "after the warm-up unless --steps or --examples fix the steps).", Seconds(), "metric", commands=TRAINING),
    Option("lr", "Train: peak learning rate of AdamW (warm-up over the first tenth, then linear decay to zero).",
           Number(), "metric", commands=TRAINING, default=str(DEFAULT_LR)),
    Option("held_out", "Train: held-out examples the accuracy is measured on (one fixed set for every method and "
           "seed).", Whole(phrase="a positive integer: held-out examples"), "metric", commands=TRAINING,
           default=str(HELD_OUT)),
    Option("checkpoints", "Train: held-out evaluations along the training (the last is the row's accuracy).",
           Whole(phrase="a positive integer: evaluations along the training"), "metric", commands=TRAINING,
           default=str(CHECKPOINTS)),
)

METRIC = Metric(
    name="train", order=70, default=False, deterministic=False, measure=measure, check=check, options=OPTIONS,
    columns=("test_accuracy", "test_loss", "test_examples", "train_loss", "train_curve", "train_steps",
             "train_examples", "train_s", "train_step_s", "train_flops", "train_budget"),
    types={"test_examples": int, "train_steps": int, "train_examples": int, "train_curve": str,
           "train_budget": str},
    column_help={
        "test_accuracy": "held-out accuracy after training (per scored token for MQAR, per sequence for ListOps)",
        "test_loss": "held-out cross-entropy after training (nats per scored token or sequence)",
        "test_examples": "held-out examples scored (one fixed set for every method and seed)",
        "train_loss": "training loss at the end: the mean over the last tenth of the steps",
        "train_curve": "checkpoints along the training, step:held-out accuracy:training loss, space separated",
        "train_steps": "optimizer steps taken", "train_examples": "training examples seen",
        "train_s": "seconds of training steps (data drawing and evaluation excluded): the time the budget spent",
        "train_step_s": "median seconds per training step", "train_flops": "FLOPs of one step (flops) x steps",
        "train_budget": "the budget as given: steps, examples or seconds, the first reached ends training"},
    scopes=("model",), scope_error="the train metric trains the LRA model: --scope model (attnbench train sets it)",
    help="train the model on its task for a budget (attnbench train): held-out accuracy, loss, time per step",
    compare=Tolerance("test_accuracy", rel=0.0, absolute=0.02, higher_is_better=True),
    table=(Column("accuracy", sort="test_accuracy", needs="test_accuracy",
                  cell=lambda row: fmt_number(100 * row["test_accuracy"], ".1f") + "%"
                  if isinstance(row.get("test_accuracy"), float) else "-"),
           Column("train s", sort="train_s", needs="train_s", cell=lambda row: fmt_number(row.get("train_s"), ".1f"))),
)
