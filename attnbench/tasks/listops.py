"""ListOps as Long Range Arena generates it (`lra_benchmarks/data/listops.py`, after Nangia and
Bowman 2018): a tree whose node is a digit with probability 0.75 (always at depth 10) or one of
MAX, MIN, MED (the integer median) and SUM_MOD (sum mod 10) over 2 to 10 arguments; the label is
its value, ten classes. LRA keeps trees of 500 to 2000 tokens for n = 2k; here a tree is kept when
its length lies strictly between n/4 and n (the same ratio), and padded to n. Tokens are counted as
LRA's filter counts them: an operator, its arguments and the closing bracket (no parentheses).

Drawing trees is Python (recursion over a tree's nodes, a fraction of a millisecond per example);
a training step costs far more, and the step time is measured apart from it.
"""

from __future__ import annotations

import random
import statistics

import torch

MAX_DEPTH, MAX_ARGS, VALUE_P = 10, 10, 0.25  # LRA's max_depth, max_args and VALUE_P
OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
END = "]"
TOKENS = ("<pad>", *(str(d) for d in range(10)), *OPERATORS, END)  # id = position; 16 tokens
IDS = {token: i for i, token in enumerate(TOKENS)}
PAD = 0


def _tree(rng: random.Random, depth: int, budget: int):
    """(tokens, value) of a random tree; None once it exceeds `budget` tokens (drawing stops early)."""
    if depth >= MAX_DEPTH or rng.random() > VALUE_P:
        digit = rng.randrange(10)
        return [str(digit)], digit
    arguments = rng.randint(2, MAX_ARGS)
    tokens, values = [], []
    for _ in range(arguments):
        drawn = _tree(rng, depth + 1, budget - len(tokens) - 2)
        if drawn is None or len(tokens) + len(drawn[0]) + 2 > budget:
            return None
        tokens += drawn[0]
        values.append(drawn[1])
    operator = rng.choice(OPERATORS)
    return [operator, *tokens, END], _apply(operator, values)


def _apply(operator: str, values: list[int]) -> int:
    if operator == "[MAX":
        return max(values)
    if operator == "[MIN":
        return min(values)
    if operator == "[MED":
        return int(statistics.median(values))  # LRA: int(np.median), the mean of the middle two, truncated
    return sum(values) % 10


def expressions(count: int, seq_len: int, rng: random.Random) -> list[tuple[list[str], int]]:
    """`count` trees of length strictly between seq_len/4 and seq_len, with their values."""
    found = []
    while len(found) < count:
        drawn = _tree(rng, 1, seq_len - 1)
        if drawn is not None and seq_len // 4 < len(drawn[0]) < seq_len:
            found.append(drawn)
    return found


def batch(size: int, seq_len: int, generator, *, vocab: int, pairs: int | None, causal: bool):
    rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
    ids = torch.full((size, seq_len), PAD, dtype=torch.long)
    labels = torch.empty(size, dtype=torch.long)
    for row, (tokens, value) in enumerate(expressions(size, seq_len, rng)):
        ids[row, :len(tokens)] = torch.tensor([IDS[t] for t in tokens])
        labels[row] = value
    return ids, labels
