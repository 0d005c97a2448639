"""The set-up of a training case (attnbench train): its task, the model it needs and how the
task's shape fits the lengths, checked with one-line errors before anything runs."""

from __future__ import annotations

from attnbench.errors import AttnbenchError
from attnbench.tasks import get_task


def check_training(setup: dict) -> dict:
    """A case with a training task: model scope, the task's own causality and vocabulary, MQAR's
    pairs; returns the set-up with the task's values filled in (the row records them)."""
    name = setup.get("train_task")
    if not name:
        if setup.get("pairs") is not None:
            raise AttnbenchError("--pairs is MQAR's key-value pairs: add --task mqar or --task mqar-bidirectional")
        return setup
    task = get_task(name)
    if setup["scope"] != "model":
        raise AttnbenchError(f"--task {name} trains the LRA model on generated data: use --scope model (attnbench "
                             "train sets it)")
    if setup.get("causal") and not task.causal:
        raise AttnbenchError(f"--task {name} is posed to an encoder (bidirectional attention): leave --causal out"
                             + (", or use --task mqar for the causal form" if name.startswith("mqar") else ""))
    pairs = setup.get("pairs")
    if pairs is not None and (not isinstance(pairs, int) or isinstance(pairs, bool) or pairs < 1):
        raise AttnbenchError(f"--pairs must be a positive whole number, not {pairs!r}")
    task.check(setup.get("vocab"), pairs)
    vocab = task.vocab_size(setup.get("vocab"))
    return {**setup, "causal": task.causal, "vocab": vocab,
            "pairs": (pairs or task.pairs) if task.pairs is not None else None}


def check_lengths(setup: dict, lengths) -> None:
    """Every length of a training case's grid fits its task (MQAR: pairs and vocabulary)."""
    if setup.get("train_task"):
        task = get_task(setup["train_task"])
        for n in lengths:
            task.check_length(n, setup["vocab"], setup.get("pairs"))
