"""Train the LRA model with a method's attention on a generated task for a budget, then score it
on held-out examples: the pass of the `train` metric (attnbench train).

The network, its data and its held-out set come from their own seeded streams: the weights and
the training batches from the case's seed (a repetition is a seed), the held-out set from one
fixed seed, so every method and repetition is scored on the same examples. The optimizer is the
founding papers' LRA harness's: AdamW (betas 0.9/0.999, eps 1e-6, no weight decay), a linear
warm-up over the first tenth of the steps and a linear decay to zero when the budget fixes the
steps (constant after the warm-up under a time budget alone); no clipping. Dropout stays off, as
in every other measurement. Only the steps are timed: data drawing and evaluation are not
training cost.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from attnbench.execute.model import build_network, mixed_precision, task_inputs
from attnbench.measure.timing import synchronize
from attnbench.plan.scopes import model_shape
from attnbench.tasks import get_task

HELD_OUT_SEED = 2**31 - 1  # the held-out set's stream: one set for every method and repetition
WARMUP = 0.1  # of the steps, when the budget fixes them
WARMUP_STEPS = 100  # under a time budget alone
EPS = 1e-6


class Diverged(FloatingPointError):
    """The training loss became NaN or infinite: the case's row gets status 'nan'."""


@dataclass(frozen=True)
class Budget:
    """What a case may spend on training: steps, examples or seconds of steps; the first reached ends it."""

    steps: int | None = None
    examples: int | None = None
    seconds: float | None = None

    def total_steps(self, batch: int) -> int | None:
        bounds = [b for b in (self.steps, self.examples and math.ceil(self.examples / batch)) if b]
        return min(bounds) if bounds else None

    def reached(self, steps: int, batch: int, seconds: float) -> bool:
        total = self.total_steps(batch)
        return (total is not None and steps >= total) or (self.seconds is not None and seconds >= self.seconds)

    def describe(self) -> str:
        parts = [f"{self.steps} steps" if self.steps else "", f"{self.examples} examples" if self.examples else "",
                 f"{self.seconds:g} s" if self.seconds else ""]
        return " or ".join(p for p in parts if p)


def _schedule(optimizer, total: int | None) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, round(WARMUP * total)) if total else WARMUP_STEPS

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 1.0 if total is None else max(0.0, (total - step) / max(1, total - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def evaluate(network, held_out: list, mixed) -> tuple[float, float]:
    """(accuracy, mean loss) over the held-out batches: per scored token, or per sequence."""
    correct, total, loss = 0, 0, 0.0
    with torch.no_grad(), mixed():
        for inputs, labels in held_out:
            logits = network(*inputs).float()
            loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == labels).sum())
            total += labels.numel()
    return correct / total, loss / total


def _checkpoints(total: int | None, budget: Budget, count: int) -> list[float]:
    """Where to evaluate along the way: step numbers when the steps are known, else seconds."""
    if total is not None:
        return sorted({max(1, round(total * i / count)) for i in range(1, count)})
    return [budget.seconds * i / count for i in range(1, count)]


def train(case, method, budget: Budget, *, lr: float, held_out_examples: int, checkpoints: int,
          device, dtype, partial: dict) -> dict:
    """Train and score the case's model; the figures go in the returned row part. On divergence the
    figures so far are left in `partial` and Diverged is raised."""
    task, shape = get_task(case.train_task), model_shape(case)
    generator = torch.Generator().manual_seed(case.seed)
    network = build_network(method, case.shape, "model", shape, device=device, dtype=dtype, generator=generator)
    network.train()
    held_out_stream = torch.Generator().manual_seed(HELD_OUT_SEED)
    # whole batches (a method may draw per batch row), at least the examples asked for
    held_out = [task_inputs(task, case.batch, case.seq_len, held_out_stream, vocab=shape.vocab, pairs=case.pairs,
                            device=device) for _ in range(math.ceil(held_out_examples / case.batch))]
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, eps=EPS, weight_decay=0.0)
    total = budget.total_steps(case.batch)
    schedule, marks = _schedule(optimizer, total), _checkpoints(total, budget, checkpoints)
    mixed = mixed_precision(case.amp, device)
    scaler = torch.amp.GradScaler(torch.device(device).type) if case.amp == "float16" else None
    step_times, losses, curve, spent = [], [], [], 0.0
    while not budget.reached(len(step_times), case.batch, spent):
        inputs, labels = task_inputs(task, case.batch, case.seq_len, generator, vocab=shape.vocab, pairs=case.pairs,
                                     device=device)
        synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with mixed():
            loss = nn.functional.cross_entropy(network(*inputs).float(), labels)
        (loss if scaler is None else scaler.scale(loss)).backward()
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        schedule.step()
        value = float(loss)  # synchronizes: the step is done
        step_times.append(time.perf_counter() - start)
        spent += step_times[-1]
        losses.append(value)
        if not math.isfinite(value):
            partial.update(_spent(step_times, losses, case.batch, budget, curve))
            raise Diverged(f"the training loss became {value} at step {len(step_times)}")
        if marks and (len(step_times) if total is not None else spent) >= marks[0]:
            marks.pop(0)
            network.eval()
            accuracy, _ = evaluate(network, held_out, mixed)
            network.train()
            curve.append((len(step_times), accuracy, _recent(losses)))
    network.eval()
    accuracy, held_out_loss = evaluate(network, held_out, mixed)
    curve.append((len(step_times), accuracy, _recent(losses)))
    return {**_spent(step_times, losses, case.batch, budget, curve), "test_accuracy": accuracy,
            "test_loss": held_out_loss, "test_examples": len(held_out) * case.batch}


def _recent(losses: list) -> float:
    """The training loss now: the mean over the last tenth of the steps."""
    return statistics.fmean(losses[-max(1, len(losses) // 10):])


def _spent(step_times: list, losses: list, batch: int, budget: Budget, curve: list) -> dict:
    """The budget spent, the loss so far and the curve (step:held-out accuracy:training loss)."""
    return {"train_steps": len(step_times), "train_examples": len(step_times) * batch, "train_s": sum(step_times),
            "train_step_s": statistics.median(step_times), "train_budget": budget.describe(),
            "train_loss": _recent(losses),
            "train_curve": " ".join(f"{s}:{a:.4f}:{loss:.4f}" for s, a, loss in curve)}
