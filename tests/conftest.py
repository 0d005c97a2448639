import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

# Inductor checks each SIMD instruction set by compiling a test program (about 12 s on a fresh
# machine, before the suite's first FlexAttention compile); the CPU's flags are enough for the
# suite, and its subprocesses inherit this. Users' first compile still makes the check.
os.environ.setdefault("TORCHINDUCTOR_VEC_ISA_OK", "1")
# Inductor compiles in a pool of worker processes; on the 2-core CI machine, beside the suite's
# own two workers, compiling in the calling process is faster (one FlexAttention kernel: 12% less).
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`'s two workers on two cores: one thread each (12% faster)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from attnbench.methods.registry import REGISTRY


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


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile with Dynamo's eager backend, and FlexAttention's compiled kernel and Dynamo's
    caches fresh before and after: what Dynamo does (recompile limits, nested compiles) without
    inductor's compilation (tens of seconds in a fresh clone), and no kernel kept for other tests."""
    import torch._dynamo

    from attnbench.methods import _flex

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: real_compile(fn, dynamic=False, backend="eager"))
    _flex.compiled_flex.cache_clear()
    torch._dynamo.reset()
    yield
    _flex.compiled_flex.cache_clear()
    torch._dynamo.reset()


def run_cli(*args: str, cwd=None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m attnbench ARGS` in a subprocess, as a user would run it (exit codes, the
    allocator restart, signals). Most tests use `cli` instead: the same, in this process."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "attnbench", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> Result:
    """`attnbench ARGS` in this process through attnbench.cli.main: what a user sees on stdout and
    stderr, and the exit code. The allocator restart (a re-exec) is what run_cli tests."""
    from attnbench.cli import main
    from attnbench.measure.machine import allocator

    out, err = io.StringIO(), io.StringIO()
    apply = allocator.apply
    allocator.apply = lambda policy: None if policy in allocator.POLICIES else apply(policy)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        allocator.apply = apply
    return Result(code, out.getvalue(), err.getvalue())


# Parameters that fit n = 64 where a method's defaults assume longer sequences (test_methods, test_model).
SMALL = {"bigbird": {"block_size": 16}, "longformer": {"window": 16, "global_tokens": 2},
         "sparse_transformer": {"stride": 16}, "reformer": {"bucket_size": 16}}

QUICK = ["--heads", "2", "--head-dim", "16", "--min-time", "0.02", "--max-time", "0.2", "--threads", "1"]


@pytest.fixture(scope="session")
def small_report(tmp_path_factory):
    """One small timed report (full, full-explicit, skyformer at n = 128, 256), built once for the
    suite through the public API, with its samples sidecar."""
    from attnbench.execute.engine import run_cases
    from attnbench.plan.case import MeasureOptions, make_cases

    path = tmp_path_factory.mktemp("reports") / "small.csv"
    cases = make_cases(["full", "full-explicit", "skyformer"], [128, 256], heads=2, head_dim=16, threads=1)
    run_cases(cases, MeasureOptions(metrics=("time", "flops", "memory", "sparsity"), min_time_s=0.1, max_time_s=0.3),
              output=path)
    return path


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def qkv(b=1, h=2, n=64, p=16, scale=1.0, seed=1):
    """Seeded float64 q, k, v for exactness checks."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, p, generator=g, dtype=torch.float64) * scale for _ in range(3)]


def build(name, shape, seed=0, **params):
    """A method's attention function in float64 on the CPU, its draws seeded."""
    from attnbench.methods.registry import create_method

    return create_method(name, **params).build(shape, device=torch.device("cpu"), dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(seed))


def pytest_collection_modifyitems(items):
    """The slow tests first (stable otherwise): with `make test`'s two workers, the long ones then
    start early instead of ending the run on one worker while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
