"""The environment a measurement ran in, recorded on every row so reports can be concatenated.

NVIDIA GPUs are described through NVML (`nvidia-ml-py`, module `pynvml`). NVML is optional: any
import or NVML error yields "unavailable" for its fields, never an exception.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

import attnbench
from attnbench.measure.machine import ENVIRONMENT
from attnbench.measure.machine.allocator import current_policy

UNAVAILABLE = "unavailable"
NVML_FIELDS = ("gpu_name", "gpu_driver", "gpu_memory_bytes", "gpu_sm_clock_mhz", "gpu_max_sm_clock_mhz")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def git_sha(where: Path | None = None) -> str:
    """The commit of the git work tree holding `where` (default: the attnbench source in use),
    '+dirty' with local edits to tracked files, '' outside git."""
    where = where or Path(attnbench.__file__).resolve().parent.parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5)

    try:
        head = git("rev-parse", "--verify", "-q", "HEAD")
        if head.returncode:
            return ""
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    sha = head.stdout.strip()
    return f"{sha}+dirty" if dirty else sha


def method_provenance(name: str) -> dict[str, str]:
    """Whose code a method is: its module's file, the version of the installed package that ships it,
    and the commit of the git work tree it sits in ('' for what cannot be told). For a built-in
    method that is attnbench itself."""
    from attnbench.methods.registry import get_method

    return _provenance(get_method(name))


@functools.cache
def _provenance(cls: type) -> dict[str, str]:
    import inspect
    import sys
    from importlib import metadata

    module = sys.modules.get(cls.__module__)
    source = inspect.getsourcefile(module) if module else None
    top = (module.__name__ if module else "").split(".")[0]
    if top == "attnbench":  # a built-in: attnbench's own version and commit (no package scan per worker)
        return {"method_source": source or "", "method_version": attnbench.__version__, "method_git_sha": git_sha()}
    version = ""
    for distribution in metadata.packages_distributions().get(top, []):
        try:
            version = metadata.version(distribution)
            break
        except metadata.PackageNotFoundError:
            continue
    return {"method_source": source or "", "method_version": version,
            "method_git_sha": git_sha(Path(source).resolve().parent) if source else ""}


@contextlib.contextmanager
def _nvml(device_index: int, uuid: str | None):
    """(pynvml, handle) of one GPU while NVML is initialised, or None when NVML cannot tell."""
    try:
        import pynvml
    except ImportError:
        yield None
        return
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        yield None
        return
    try:
        # NVML numbers GPUs in PCI order and CUDA may not; the UUID names the same board in both.
        try:
            handle = (pynvml.nvmlDeviceGetHandleByUUID(uuid) if uuid
                      else pynvml.nvmlDeviceGetHandleByIndex(device_index))
        except pynvml.NVMLError:
            handle = None
        yield (pynvml, handle) if handle is not None else None
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _query(nvml, queries: dict) -> dict[str, object]:
    """Each query's answer, or 'unavailable' where NVML does not give it."""
    pynvml, _ = nvml
    info = {}
    for name, query in queries.items():
        try:
            value = query()
            info[name] = value.decode() if isinstance(value, bytes) else value
        except pynvml.NVMLError:
            info[name] = UNAVAILABLE
    return info


def nvml_info(device_index: int = 0, uuid: str | None = None) -> dict[str, object]:
    """Name, driver, memory and clocks of one NVIDIA GPU; every field 'unavailable' on failure."""
    with _nvml(device_index, uuid) as nvml:
        if nvml is None:
            return dict.fromkeys(NVML_FIELDS, UNAVAILABLE)
        pynvml, handle = nvml
        return _query(nvml, {
            "gpu_name": lambda: pynvml.nvmlDeviceGetName(handle),
            "gpu_driver": pynvml.nvmlSystemGetDriverVersion,
            "gpu_memory_bytes": lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).total,
            "gpu_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "gpu_max_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
        })


def _device_ids(device: str) -> tuple[int, str | None]:
    """(CUDA index, NVML UUID) of a device; without CUDA here, the index it names and no UUID."""
    dev = torch.device(device)
    try:
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    except (RuntimeError, AssertionError):  # torch without CUDA: NVML may still answer by index
        return dev.index or 0, None
    return index, f"GPU-{uuid}" if uuid else None


GPU_READINGS = ("sm_clock_mhz", "power_throttle_ns", "thermal_throttle_ns")


@contextlib.contextmanager
def gpu_monitor(device: str):
    """`read()` -> the case's GPU now: its SM clock (MHz) and NVML's violation counters, the
    nanoseconds since boot its clocks were held down by the power cap and by heat (differenced
    over a window, they say how much of it was throttled); 'unavailable' for what NVML cannot tell.
    NVML is initialised once for every reading of the block."""
    with _nvml(*_device_ids(device)) as nvml:
        if nvml is None:
            yield lambda: dict.fromkeys(GPU_READINGS, UNAVAILABLE)
            return
        pynvml, handle = nvml

        def violation(policy):
            return lambda: pynvml.nvmlDeviceGetViolationStatus(handle, policy).violationTime
        queries = {"sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                   "power_throttle_ns": violation(pynvml.NVML_PERF_POLICY_POWER),
                   "thermal_throttle_ns": violation(pynvml.NVML_PERF_POLICY_THERMAL)}
        yield lambda: _query(nvml, queries)


@functools.cache
def environment(device: str = "cpu") -> dict[str, object]:
    """Columns describing software, machine and allocator set-up for rows measured on `device`."""
    dev = torch.device(device)
    env: dict[str, object] = {
        "attnbench_version": attnbench.__version__,
        "git_sha": git_sha(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "hostname": platform.node(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        # glibc's malloc settings change the cost of large CPU allocations (attnbench.measure.machine.allocator).
        "allocator": current_policy(),
        "malloc_env": " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
    }
    if dev.type == "cuda":
        index, uuid = _device_ids(device)
        try:
            env["device_name"] = torch.cuda.get_device_properties(index).name
        except (RuntimeError, AssertionError):  # e.g. a Ray driver without a GPU stamping a task's failure row
            env["device_name"] = UNAVAILABLE
        env["cuda_version"] = torch.version.cuda or ""
        env["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        env["gpu_uuid"] = uuid or UNAVAILABLE  # the board itself: CUDA's and NVML's indices may differ
        env.update(nvml_info(index, uuid))
    else:
        env["device_name"] = env["cpu_model"]
        env["cuda_version"] = ""
        env["tf32_matmul"] = ""
        env["gpu_uuid"] = ""
        env.update(dict.fromkeys(NVML_FIELDS, UNAVAILABLE))
    return {column: env[column] for column in ENVIRONMENT}  # the schema's columns, in its order
