"""The scopes a case can measure, and the shape of the layer or model around the attention
(torch-free, so the command line and scenario files can name the defaults without loading it).
The modules themselves are in attnbench.execute.model."""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("attention", "layer", "model")  # what --scope chooses
SWAP = "swap"  # the scope of `attnbench swap`'s cases: a Hugging Face model with the method in its layers
ALL_SCOPES = (*SCOPES, SWAP)  # every scope a row can hold (attnbench.execute.scopes prepares each)
# --scope model without --heads/--head-dim: the LRA configuration, 2 heads of 32 (width 64).
MODEL_HEADS, MODEL_HEAD_DIM = 2, 32


@dataclass(frozen=True)
class ModelShape:
    """What a layer or model is made of beyond the attention shape (the LRA configuration)."""

    layers: int = 2
    ffn_dim: int = 0  # 0: twice the width (the LRA configuration: 128 for width 64)
    vocab: int = 512
    classes: int = 10
    predictions: int = 0  # per sequence, at scored positions (a token task: MQAR's queries); 0: one, pooled

    def ffn(self, width: int) -> int:
        return self.ffn_dim or 2 * width


def model_shape(case) -> ModelShape:
    """The layer or model of a case: its layers, FFN and vocabulary, and the head its training task
    needs (attnbench.tasks: a class per sequence, or a token at each scored position)."""
    from attnbench.tasks import get_task

    shape = ModelShape(layers=case.layers or 1, ffn_dim=case.ffn_dim or 0, vocab=case.vocab or ModelShape.vocab)
    if not case.train_task:
        return shape
    task = get_task(case.train_task)
    vocab = task.vocab_size(case.vocab)
    predictions = (case.pairs or task.pairs) if task.head == "tokens" else 0
    return ModelShape(shape.layers, shape.ffn_dim, vocab, task.class_count(vocab), predictions)
