"""attnbench train's loop on a task small enough for the suite: exact attention learns MQAR and a
method that cannot recall (uniform weights) stays at chance; a seed repeats its figures; a diverged
run, a method without backward and bad budgets are rows or one-line errors."""

from dataclasses import dataclass

import pytest
import torch

from attnbench.cli import main
from attnbench.execute.runner import run_case
from attnbench.methods.contract import Capabilities, Method
from attnbench.plan.case import MeasureOptions, make_cases

TINY = {"seq": 16, "pairs": 2, "vocab": 32, "batch": 32}  # causal MQAR that full attention learns in ~200 steps


@dataclass(frozen=True)
class Uniform(Method):
    """Every query weighs the keys it may see alike (causal: the mean of v up to its position), which
    cannot tell one pair from another."""

    capabilities = Capabilities(causal=True)

    def build(self, shape, *, device, dtype, generator):
        def uniform(q, k, v):
            seen = torch.arange(1, v.shape[2] + 1, device=v.device, dtype=v.dtype)[:, None]
            return v.cumsum(dim=2) / seen
        return uniform


@dataclass(frozen=True)
class Frozen(Method):
    """A method without a backward pass."""

    capabilities = Capabilities(backward=False)

    def build(self, shape, *, device, dtype, generator):
        return lambda q, k, v: v


def _train(method: str, steps: int, lr: float = 3e-3, task: str = "mqar", metrics=("train",), **setup):
    shape = {**TINY, **setup}
    seq = shape.pop("seq")
    case, = make_cases([method], [seq], scope="model", mode="train", train_task=task, **shape)
    settings = (("held_out", 256), ("lr", lr), ("steps", steps))
    return run_case(case, MeasureOptions(metrics=metrics, settings=settings))


def test_exact_attention_learns_recall_where_uniform_weights_stay_at_chance():
    learned = _train("full", 300, metrics=("train", "flops", "memory"))
    assert learned["status"] == "ok", learned["status_detail"]
    assert learned["test_accuracy"] >= 0.95, learned["train_curve"]
    assert learned["train_flops"] == 300 * learned["flops"] and learned["peak_mem_bytes"] > 0
    uniform = _train("tests.execute.test_training:Uniform", 300)
    assert uniform["status"] == "ok", uniform["status_detail"]
    # chance: the two values in the example (a model that reads neither key can only guess between them)
    assert uniform["test_accuracy"] < 0.6, uniform["train_curve"]
    for row in (learned, uniform):
        assert row["train_steps"] == 300 and row["train_examples"] == 300 * 32 and row["test_examples"] == 256
        assert row["train_budget"] == "300 steps" and len(row["train_curve"].split()) == 4


def test_a_seed_repeats_its_figures_and_another_seed_differs():
    first, again, other = _train("linear", 8), _train("linear", 8), _train("linear", 8, seed=1)
    assert (first["test_accuracy"], first["train_loss"]) == (again["test_accuracy"], again["train_loss"])
    assert first["train_loss"] != other["train_loss"]


def test_a_diverged_run_and_a_method_without_backward_are_rows_with_their_status():
    diverged = _train("full", 20, lr=1e30)
    assert diverged["status"] == "nan" and "training loss became" in diverged["status_detail"]
    assert diverged["train_steps"] >= 1  # the steps it took before are kept
    frozen = _train("tests.execute.test_training:Frozen", 5)
    assert frozen["status"] == "unsupported" and "no backward" in frozen["status_detail"]
    listops = _train("full", 2, task="listops", seq=64, vocab=None, pairs=None, batch=4)
    assert listops["status"] == "ok" and 0 <= listops["test_accuracy"] <= 1


@pytest.mark.parametrize("argv, message", [
    (["--task", "copy"], "--task must be one of"),
    (["--task", "mqar", "--steps", "0"], "greater than or equal to 1"),
    (["--task", "mqar", "--train-time", "0s"], "--train-time must be a duration"),
    (["--task", "listops", "--pairs", "4"], "leave it out"),
    (["--task", "mqar", "-n", "64", "--pairs", "32"], "4 x pairs"),
    (["--task", "mqar-bidirectional", "--causal"], "No such option"),
    ([], "give the task to learn"),
])
def test_bad_training_input_is_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dry-run", *argv])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
