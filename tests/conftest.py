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
