"""Multi-query associative recall (Zoology, Arora et al. 2023; `zoology/data/associative_recall.py`).

An example is `pairs` key-value pairs (keys from the lower half of the vocabulary, values from the
upper, distinct within the example), then each key queried once at an even offset of the rest,
the gaps drawn without replacement from Zoology's power law p(i) ~ a i^(a-1) (a = 0.01) so that
near queries are likelier. The causal form scores the value at its key's query (predict the next
token); the rest is noise drawn from the whole vocabulary, as Zoology's `random_non_queries`.
The bidirectional form, for an encoder, puts a mask token (0) right after each query and scores
the value there; its noise comes from the key half, so no value is ever visible outside its pair.
"""

from __future__ import annotations

import torch

from attnbench.tasks import IGNORE

POWER_A = 0.01  # Zoology's train_power_a and test_power_a
MASK = 0


def _distinct(size: int, low: int, high: int, count: int, generator) -> torch.Tensor:
    """`count` distinct integers from [low, high) per row, uniformly (a random permutation's head)."""
    return torch.rand(size, high - low, generator=generator).argsort(dim=1)[:, :count] + low


def batch(size: int, seq_len: int, generator, *, vocab: int, pairs: int, causal: bool):
    context = 2 * pairs
    keys = _distinct(size, 1, vocab // 2, pairs, generator)
    values = _distinct(size, vocab // 2, vocab, pairs, generator)
    space = (seq_len - context) // 2
    weights = POWER_A * torch.arange(1, space + 1, dtype=torch.float64) ** (POWER_A - 1)
    gaps = torch.multinomial(weights.expand(size, space), pairs, replacement=False, generator=generator)
    if causal:  # noise over the whole vocabulary (Zoology)
        ids = torch.randint(0, vocab, (size, seq_len), generator=generator)
    else:  # the key half only: no value appears outside its pair
        ids = torch.randint(1, vocab // 2, (size, seq_len), generator=generator)
    ids[:, 0:context:2], ids[:, 1:context:2] = keys, values
    queries = context + 2 * gaps
    ids.scatter_(1, queries, keys)
    labels = torch.full((size, seq_len), IGNORE, dtype=torch.long)
    answers = queries if causal else queries + 1
    if not causal:
        ids.scatter_(1, answers, MASK)
    labels.scatter_(1, answers, values)
    return ids, labels
