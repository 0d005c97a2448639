"""attnbench: benchmark and profile attention implementations.

Library first: everything the CLI does is a call here. Heavy names (torch, pandas) load on first
use so that `attnbench --help` stays fast.

>>> import attnbench
>>> cases = attnbench.make_cases(["full", "full-explicit"], [512, 1024], heads=4, head_dim=64)
>>> frame = attnbench.run(cases)            # one pandas row per case
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Case": "attnbench.case", "make_cases": "attnbench.case", "Settings": "attnbench.runner",
    "run": "attnbench.runner", "run_case": "attnbench.runner", "iter_rows": "attnbench.runner",
    "list_methods": "attnbench.registry", "get_method": "attnbench.registry",
    "create_method": "attnbench.registry", "register": "attnbench.registry", "Method": "attnbench.registry",
    "param": "attnbench.registry", "Shape": "attnbench.registry", "Capabilities": "attnbench.registry",
    "environment": "attnbench.env", "read_report": "attnbench.report", "AttnbenchError": "attnbench.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnbench' has no attribute {name!r}")
