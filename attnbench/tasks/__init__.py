"""Learning tasks generated on the fly, seeded, with no downloads: what `attnbench train` teaches a
small model with each method's attention, to measure quality at a cost.

Each task is a module here with a `batch(size, seq_len, generator, vocab, pairs)` that returns
token ids and labels; this module names them and what they need (torch-free, so the command line
and scenario files check a task before torch loads).

May import attnbench.errors only (and torch, numpy inside the generators).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from attnbench.errors import AttnbenchError

IGNORE = -100  # a label that is not scored (cross-entropy's ignore_index, Zoology's convention)


@dataclass(frozen=True)
class Task:
    name: str
    help: str
    module: str  # the generator's module under attnbench.tasks
    head: str  # "tokens": a prediction at each labelled position; "pooled": one class per sequence
    causal: bool  # the attention the task is posed for: causal (a decoder) or bidirectional (an encoder)
    vocab: int | None  # the default vocabulary; None: the task's grammar fixes it
    fixed_vocab: int | None = None  # the grammar's vocabulary (ListOps)
    classes: int | None = None  # pooled tasks: the classes; token tasks predict over the vocabulary
    pairs: int | None = None  # MQAR: the default key-value pairs

    def vocab_size(self, given: int | None) -> int:
        return self.fixed_vocab or given or self.vocab

    def class_count(self, vocab: int) -> int:
        return self.classes or vocab

    def check(self, setup_vocab: int | None, pairs: int | None) -> None:
        """One-line errors for a vocabulary or pairs the task does not take."""
        if self.fixed_vocab and setup_vocab not in (None, self.fixed_vocab):
            raise AttnbenchError(f"--task {self.name} has its grammar's {self.fixed_vocab} tokens: leave --vocab out")
        if self.pairs is None and pairs is not None:
            raise AttnbenchError(f"--pairs is MQAR's key-value pairs: --task {self.name} has none; leave it out")

    def check_length(self, seq_len: int, vocab: int, pairs: int | None) -> None:
        """One-line errors for a length the generator cannot fill (MQAR's layout)."""
        if self.pairs is None:
            return
        if 4 * pairs > seq_len or seq_len % 2:
            raise AttnbenchError(f"--task {self.name} needs an even --seq of at least 4 x pairs (Zoology's layout: "
                                 f"the pairs, then a query slot per pair among as many gaps): {pairs} pairs at n = "
                                 f"{seq_len} do not fit; give --seq {max(4 * pairs, seq_len + seq_len % 2)} or fewer "
                                 "--pairs")
        if vocab <= seq_len or vocab // 2 <= pairs:
            raise AttnbenchError(f"--task {self.name} draws keys and values from halves of the vocabulary, which must "
                                 f"exceed the length (Zoology): --vocab {vocab} at n = {seq_len} is too small; give "
                                 f"--vocab {max(2 * seq_len, 2 * pairs + 2)} or more")

    def batch(self, size: int, seq_len: int, generator, *, vocab: int | None = None, pairs: int | None = None):
        """(ids, labels) of `size` examples: ids (size, seq_len); labels (size, seq_len) with
        IGNORE where nothing is scored (token tasks) or (size,) classes (pooled tasks)."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        return module.batch(size, seq_len, generator, vocab=self.vocab_size(vocab), pairs=pairs or self.pairs,
                            causal=self.causal)


TASKS = {task.name: task for task in (
    Task("mqar", "multi-query associative recall as Zoology defines it (key-value pairs, then each key queried "
         "once at power-law gaps); causal: the value is predicted at its key's query", "mqar", "tokens", True,
         vocab=8192, pairs=16),
    Task("mqar-bidirectional", "MQAR for an encoder: each query is followed by a mask whose position is scored, "
         "and no value appears outside its pair", "mqar", "tokens", False, vocab=8192, pairs=16),
    Task("listops", "ListOps by LRA's grammar (MAX, MIN, MED, SUM_MOD over digits, depth 10, 10 arguments), "
         "lengths between n/4 and n as LRA's 500-2000 at 2k; ten-way classification", "listops", "pooled", False,
         vocab=None, fixed_vocab=16, classes=10),
)}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise AttnbenchError(f"unknown task {name!r}; attnbench train takes --task {', '.join(TASKS)}") from None
