import os
import subprocess
import sys

import pytest
import torch

from attnbench.registry import REGISTRY


@pytest.fixture
def temp_method():
    """Register throw-away methods for a test and remove them afterwards."""
    added = []

    def add(cls_name: str):
        added.append(cls_name)
        return cls_name

    yield add
    for name in added:
        REGISTRY.pop(name, None)


def run_cli(*args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m attnbench ARGS` in a subprocess, as a user would run it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "attnbench", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def qkv(b=1, h=2, n=64, p=16, scale=1.0, seed=1):
    """Seeded float64 q, k, v for exactness checks."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, p, generator=g, dtype=torch.float64) * scale for _ in range(3)]


def build(name, shape, seed=0, **params):
    """A method's attention function in float64 on the CPU, its draws seeded."""
    from attnbench.registry import create_method

    return create_method(name, **params).build(shape, device=torch.device("cpu"), dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(seed))
