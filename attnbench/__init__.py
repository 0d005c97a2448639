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
    "Case": "attnbench.plan.case", "Limits": "attnbench.plan.case", "make_cases": "attnbench.plan.case",
    "MeasureOptions": "attnbench.plan.case", "Metric": "attnbench.metrics", "register_metric": "attnbench.metrics",
    "run": "attnbench.execute.engine", "run_cases": "attnbench.execute.engine",
    "InProcess": "attnbench.execute.launchers", "WorkerLauncher": "attnbench.execute.workers",
    "run_case": "attnbench.execute.runner", "list_methods": "attnbench.methods.registry",
    "get_method": "attnbench.methods.registry", "create_method": "attnbench.methods.registry",
    "register": "attnbench.methods.registry", "Method": "attnbench.methods.contract",
    "param": "attnbench.methods.contract", "Shape": "attnbench.methods.contract",
    "Capabilities": "attnbench.methods.contract", "environment": "attnbench.measure.machine.env",
    "load": "attnbench.results.report", "compare_rows": "attnbench.judge.compare",
    "AttnbenchError": "attnbench.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnbench' has no attribute {name!r}")
