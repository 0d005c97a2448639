"""Which stage an op belongs to: the recorder behind `attnbench.methods.contract.stage`.

While a `Recorder` is in force (`recording()`), every stage a method enters is pushed on its
stack (named by its path, "attention/landmarks" when nested) and, when a torch profiler is on,
opened as a `record_function` range. A forward op belongs to the innermost open stage. A
backward op runs after its stage has closed, in the autograd engine, so the recorder also keeps
the autograd sequence numbers each stage's forward consumed: the node being evaluated
(`torch._C._current_autograd_node()`) was made by the stage whose range holds its number, and
its backward belongs to that stage too. Ops outside every stage belong to OTHER.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from attnbench.methods.contract import RECORDERS

OTHER = "other"  # what no stage holds: Python between stages, allocation, launches, the caller's own ops
KEEP_RANGES = 4096  # sequence ranges kept: the stages of the latest forwards (a backward follows its forward)


def _sequence_nr() -> int:
    return torch._C._autograd._get_sequence_nr()


def _in_backward() -> bool:
    return torch._C._current_autograd_node() is not None


class Recorder:
    """The stages entered while it is in force: `current()` names the stage of the op running now,
    `stage_of(sequence_nr)` the stage whose forward made an autograd node, `seen` every stage path
    in the order first entered."""

    def __init__(self) -> None:
        self.open: list[tuple[str, int, bool, object]] = []  # (path, first sequence nr, in backward, range)
        self.ranges: list[tuple[int, int, str]] = []  # (first, end) sequence numbers of closed stages, path
        self.seen: dict[str, None] = {}

    def enter(self, name: str) -> None:
        path = f"{self.open[-1][0]}/{name}" if self.open else name
        self.seen.setdefault(path)
        profiler = torch.autograd.profiler._is_profiler_enabled
        marker = torch.profiler.record_function(path).__enter__() if profiler else None
        self.open.append((path, _sequence_nr(), _in_backward(), marker))

    def exit(self, token: None) -> None:
        path, first, _, marker = self.open.pop()
        end = _sequence_nr()
        if end > first:
            self.ranges.append((first, end, path))
            del self.ranges[:-KEEP_RANGES]
        if marker is not None:
            marker.__exit__(None, None, None)

    def stage_of(self, sequence_nr: int) -> str:
        """The innermost stage whose forward consumed this autograd sequence number."""
        best, best_first = OTHER, -1
        for first, end, path in self.ranges:
            if first <= sequence_nr < end and first > best_first:
                best, best_first = path, first
        return best

    def current(self) -> str:
        """The stage of the op running now: the innermost open stage, or during a backward the
        stage that made the node being evaluated (unless a stage was opened inside the backward)."""
        node = torch._C._current_autograd_node()
        if node is None or (self.open and self.open[-1][2]):
            return self.open[-1][0] if self.open else OTHER
        return self.stage_of(node._sequence_nr())


@contextlib.contextmanager
def recording(recorder: Recorder | None = None) -> Iterator[Recorder]:
    """Put a recorder in force (a new one unless given) for the block."""
    recorder = recorder or Recorder()
    RECORDERS.append(recorder)
    try:
        yield recorder
    finally:
        RECORDERS.remove(recorder)
