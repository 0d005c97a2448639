"""Workers are forked from a template process: anything the template imports that queries CUDA or
the accelerator arms torch's bad-fork guard, and every forked worker then fails its first CUDA call
("Cannot re-initialize CUDA in forked subprocess"). A CPU torch cannot show the failure itself, so
these tests import what the template imports with every such query patched to raise."""

import json
import os
import subprocess
import sys

import pytest

# The queries that initialise CUDA, or arm the bad-fork guard, when called before a fork.
_PROBE = r"""
import importlib, json, sys
import torch

called = []

def forbid(owner, name):
    if not hasattr(owner, name):
        return
    def raiser(*args, **kwargs):
        called.append(f"{getattr(owner, '__name__', owner)}.{name}")
        raise AssertionError(f"{name} called while the template imports")
    setattr(owner, name, raiser)

for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "get_device_properties",
             "get_device_capability", "synchronize"):
    forbid(torch.cuda, name)
forbid(torch, "get_device_module")
forbid(torch._C, "_cuda_getDeviceCount")
forbid(torch._C, "_cuda_init")
if hasattr(torch, "accelerator"):
    for name in dir(torch.accelerator):
        if not name.startswith("_") and callable(getattr(torch.accelerator, name)):
            forbid(torch.accelerator, name)

from attnbench.metrics import metric_names
from attnbench.execute.workers import PRELOAD, metric_imports

failures = {}
for module in [*metric_imports(metric_names()), *PRELOAD]:
    try:
        importlib.import_module(module)
    except BaseException as exc:
        failures[module] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"failures": failures, "called": called,
                  "benchmark_imported": "torch.utils.benchmark" in sys.modules}))
"""


@pytest.mark.slow
def test_the_workers_template_imports_query_no_cuda_and_no_accelerator():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["called"] == [] and found["failures"] == {}, found
    # Up to torch 2.11, importing torch.utils.benchmark itself asks torch.accelerator whether a
    # device is there: the template must not import it on any torch.
    assert not found["benchmark_imported"], "the template imports torch.utils.benchmark"


def test_workers_and_their_template_check_cuda_through_nvml(monkeypatch):
    from attnbench.execute import workers

    monkeypatch.delenv("PYTORCH_NVML_BASED_CUDA_CHECK", raising=False)
    workers._context()
    assert os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
