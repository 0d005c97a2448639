"""The generated tasks: ListOps labels checked by an evaluator of our own over the tokens (a stack,
not the generator's recursion), MQAR's answers against the pairs, the bidirectional form's masks."""

import statistics

import pytest
import torch

from attnbench.errors import AttnbenchError
from attnbench.tasks import IGNORE, TASKS, get_task
from attnbench.tasks.listops import END, OPERATORS, PAD, TOKENS
from attnbench.tasks.mqar import MASK


def _evaluate(tokens: list[str]) -> int:
    """A ListOps expression's value, read left to right with a stack of open operators."""
    stack: list[tuple[str, list[int]]] = []
    result = None
    for token in tokens:
        if token in OPERATORS:
            stack.append((token, []))
            continue
        if token == END:
            operator, values = stack.pop()
            value = {"[MAX": max, "[MIN": min, "[MED": lambda xs: int(statistics.median(xs)),
                     "[SM": lambda xs: sum(xs) % 10}[operator](values)
        else:
            value = int(token)
        if stack:
            stack[-1][1].append(value)
        else:
            result = value
    assert not stack
    return result


def test_every_listops_expression_evaluates_to_its_label():
    generator = torch.Generator().manual_seed(3)
    ids, labels = get_task("listops").batch(200, 128, generator)
    assert ids.shape == (200, 128) and labels.shape == (200,)
    seen_operators = set()
    for row, label in zip(ids.tolist(), labels.tolist()):
        tokens = [TOKENS[i] for i in row if i != PAD]
        assert row[len(tokens):] == [PAD] * (128 - len(tokens))  # padding only after the expression
        assert 128 // 4 < len(tokens) < 128  # LRA's length window, scaled to n
        assert tokens[0] in OPERATORS and tokens[-1] == END
        assert _evaluate(tokens) == label
        seen_operators |= set(tokens) & set(OPERATORS)
    assert seen_operators == set(OPERATORS) and len(set(labels.tolist())) == 10


@pytest.mark.parametrize("pairs", [4, 16])
def test_every_mqar_answer_is_the_value_its_key_was_paired_with(pairs):
    generator = torch.Generator().manual_seed(pairs)
    ids, labels = get_task("mqar").batch(64, 128, generator, vocab=256, pairs=pairs)
    context = 2 * pairs
    for row, answers in zip(ids.tolist(), labels.tolist()):
        keys, values = row[0:context:2], row[1:context:2]
        assert len(set(keys)) == pairs and all(1 <= k < 128 for k in keys) and all(128 <= v < 256 for v in values)
        scored = [p for p, a in enumerate(answers) if a != IGNORE]
        assert len(scored) == pairs and min(scored) >= context and all((p - context) % 2 == 0 for p in scored)
        assert sorted(row[p] for p in scored) == sorted(keys)  # each key is queried once
        for p in scored:
            assert answers[p] == values[keys.index(row[p])]


def test_the_bidirectional_form_never_exposes_an_answer():
    generator = torch.Generator().manual_seed(5)
    pairs, context = 8, 16
    ids, labels = get_task("mqar-bidirectional").batch(64, 128, generator, vocab=256, pairs=pairs)
    for row, answers in zip(ids.tolist(), labels.tolist()):
        keys, values = row[0:context:2], row[1:context:2]
        scored = [p for p, a in enumerate(answers) if a != IGNORE]
        assert len(scored) == pairs
        for p in scored:
            assert row[p] == MASK and answers[p] == values[keys.index(row[p - 1])]
        # no value anywhere but in its pair, and the mask only where an answer is scored
        assert not set(values) & set(row[context:])
        assert [p for p, token in enumerate(row) if token == MASK] == scored


def test_a_seed_draws_the_same_batch_and_another_seed_another():
    for task in TASKS.values():
        first = task.batch(4, 64, torch.Generator().manual_seed(1), vocab=128, pairs=4)
        again = task.batch(4, 64, torch.Generator().manual_seed(1), vocab=128, pairs=4)
        other = task.batch(4, 64, torch.Generator().manual_seed(2), vocab=128, pairs=4)
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        assert not torch.equal(first[0], other[0])


def test_shapes_the_generators_cannot_fill_are_one_line_errors():
    with pytest.raises(AttnbenchError, match="unknown task 'copy'"):
        get_task("copy")
    with pytest.raises(AttnbenchError, match="4 x pairs"):
        get_task("mqar").check_length(64, 128, 32)
    with pytest.raises(AttnbenchError, match="must exceed the length"):
        get_task("mqar").check_length(256, 256, 16)
    with pytest.raises(AttnbenchError, match="leave --vocab out"):
        get_task("listops").check(512, None)
    with pytest.raises(AttnbenchError, match="leave it out"):
        get_task("listops").check(None, 8)
