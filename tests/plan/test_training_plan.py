"""A training grid: a scenario's tasks set their own training task, pairs and vocabulary; what
does not fit is a one-line error naming the file and key."""

import pytest

from attnbench.errors import AttnbenchError
from attnbench.plan.scenario import scenario_from_dict

TRAINING = {"methods": ["full"], "scope": "model", "mode": "train", "metrics": ["train"]}


def test_a_task_sets_its_training_task_pairs_and_vocabulary():
    plan = scenario_from_dict({**TRAINING, "tasks": [
        {"name": "recall", "train_task": "mqar", "seq": 64, "pairs": [4, 8], "vocab": 128, "batch": 64},
        {"name": "lo", "train_task": "listops", "seq": 512}]})
    cases = plan.cases()
    assert [(c.train_task, c.seq_len, c.pairs, c.vocab, c.causal, c.batch) for c in cases] == [
        ("mqar", 64, 4, 128, True, 64), ("mqar", 64, 8, 128, True, 64), ("listops", 512, None, 16, False, 1)]
    assert (cases[0].heads, cases[0].head_dim) == (2, 32)  # the LRA model unless told otherwise


@pytest.mark.parametrize("task, message", [
    ({"train_task": "copy"}, r"tasks\[0\]\.train_task: must be"),
    ({"train_task": "mqar", "pairs": 0}, r"tasks\[0\]\.pairs: must be"),
    ({"train_task": "mqar", "pairs": 32}, "4 x pairs"),
    ({"train_task": "mqar", "vocab": 32}, "must exceed the length"),
    ({"train_task": "listops", "vocab": 128}, "leave --vocab out"),
])
def test_what_a_task_cannot_train_is_a_one_line_error(task, message):
    with pytest.raises(AttnbenchError, match=message):
        scenario_from_dict({**TRAINING, "tasks": [{"name": "t", "seq": 64, **task}]}, "s.toml").cases()
