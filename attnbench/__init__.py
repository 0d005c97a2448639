"""attnbench: benchmark and profile attention implementations.

Library first: everything the CLI does is a call here. Heavy names (torch, pandas) load on first
use so that `attnbench --help` stays fast.

>>> import attnbench
>>> cases = attnbench.make_cases(["full", "full-explicit"], [512, 1024], heads=4, head_dim=64)
>>> frame = attnbench.run(cases)            # one pandas row per case (in this process)
>>> outcome = attnbench.run_cases(cases, launcher=attnbench.WorkerLauncher(), output="r.csv")
>>> report = attnbench.load("r.csv")       # typed rows, each with its raw timing samples
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Case": "attnbench.case", "Limits": "attnbench.case", "make_cases": "attnbench.case",
    "MeasureOptions": "attnbench.case", "Metric": "attnbench.metrics", "register_metric": "attnbench.metrics",
    "run": "attnbench.engine", "run_cases": "attnbench.engine", "InProcess": "attnbench.launchers",
    "WorkerLauncher": "attnbench.workers", "run_case": "attnbench.runner",
    "list_methods": "attnbench.registry", "get_method": "attnbench.registry",
    "create_method": "attnbench.registry", "register": "attnbench.registry", "Method": "attnbench.contract",
    "param": "attnbench.contract", "Shape": "attnbench.contract", "Capabilities": "attnbench.contract",
    "environment": "attnbench.env", "load": "attnbench.report", "AttnbenchError": "attnbench.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnbench' has no attribute {name!r}")
