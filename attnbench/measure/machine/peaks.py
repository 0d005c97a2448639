"""Peak rates a measured FLOP/s is a fraction of (machine_peak_fraction), and the memory bandwidth
a measured bandwidth is a fraction of (bandwidth_peak_fraction: datasheets only).

On a GPU in the table of published dense peaks (attnbench/data/gpu_peaks.toml: each row cites
its datasheet) the peak is the datasheet's for the case's dtype (tf32 for float32 when TF32
matmuls are on): peak_source 'spec'. Elsewhere (every CPU, an unknown GPU, a dtype the table
lacks) it is this machine's measured dense GEMM rate: peak_source 'measured', and a fused kernel
can then exceed 100%.
"""

from __future__ import annotations

import functools
from importlib import resources

from attnbench import tomlfile

DTYPE_KEYS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": None}


@functools.cache
def gpu_table() -> list[dict]:
    return tomlfile.loads(resources.files("attnbench").joinpath("data/gpu_peaks.toml").read_text())["gpu"]


def gpu_spec(device_name: str) -> dict | None:
    """The table's row for a GPU name as torch reports it, or None."""
    name = device_name.lower()
    return next((row for row in gpu_table() if all(part.lower() in name for part in row["match"])), None)


def spec_peak(device_name: str, dtype: str, tf32: bool) -> float | None:
    """The datasheet's dense FLOP/s for this GPU and dtype, or None when the table does not say."""
    row = gpu_spec(device_name)
    key = DTYPE_KEYS.get(dtype)
    if row is None or key is None:
        return None
    if key == "fp32" and tf32 and "tf32" in row:
        key = "tf32"
    return row[key] * 1e12 if key in row else None


def spec_bandwidth(device_name: str) -> float | None:
    """The datasheet's memory bandwidth in bytes/s, or None."""
    row = gpu_spec(device_name)
    return None if row is None else row["bandwidth"] * 1e9


def machine_peak(device: str, dtype: str, threads: int) -> tuple[float, str]:
    """(peak FLOP/s, 'spec' or 'measured') for the case's device and dtype."""
    import torch

    from attnbench.measure.timing import matmul_peak_flops_per_s

    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_properties(dev).name
        spec = spec_peak(name, dtype, torch.backends.cuda.matmul.allow_tf32)
        if spec is not None:
            return spec, "spec"
    return matmul_peak_flops_per_s(device, dtype, threads), "measured"


def machine_bandwidth(device: str) -> float | None:
    """The memory bandwidth (bytes/s) an achieved bandwidth is a fraction of: a GPU's datasheet;
    None on a CPU or a GPU the table lacks (no measured yardstick: a copy loop on a CPU says
    little about what a fused kernel's traffic meets)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return spec_bandwidth(torch.cuda.get_device_properties(dev).name)
