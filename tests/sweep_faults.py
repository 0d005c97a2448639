"""Methods that fail on purpose, for the sweep isolation tests (imported as tests.sweep_faults:Name)."""

import os
import signal
import time
from dataclasses import dataclass

import torch

from attnbench.methods.contract import Method


@dataclass(frozen=True)
class Hog(Method):
    """Allocates 8 GiB and touches it: past any test cap."""

    def build(self, shape, *, device, dtype, generator):
        return lambda q, k, v: torch.ones(2**31, dtype=torch.float32).sum() + q


@dataclass(frozen=True)
class Hang(Method):
    def build(self, shape, *, device, dtype, generator):
        def hang(q, k, v):
            time.sleep(3600)
            return q
        return hang


@dataclass(frozen=True)
class Gate(Method):
    """Waits (at most a minute) until the file named by ATTNBENCH_TEST_GATE exists: a writer that
    holds its report's lock until the test lets it go."""

    def build(self, shape, *, device, dtype, generator):
        gate, deadline = os.environ["ATTNBENCH_TEST_GATE"], time.time() + 60

        def wait(q, k, v):
            while not os.path.exists(gate) and time.time() < deadline:
                time.sleep(0.02)
            return q
        return wait


@dataclass(frozen=True)
class Suicide(Method):
    def build(self, shape, *, device, dtype, generator):
        def die(q, k, v):
            os.kill(os.getpid(), signal.SIGKILL)
            return q
        return die


@dataclass(frozen=True)
class NaNs(Method):
    def build(self, shape, *, device, dtype, generator):
        return lambda q, k, v: q * float("nan")
