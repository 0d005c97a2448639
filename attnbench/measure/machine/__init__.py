"""The machine a measurement runs on: its environment (env: versions, CPU, GPU through NVML),
its peak rates (peaks) and the CPU allocator policy (allocator).

May import attnbench.errors, attnbench.tomlfile, attnbench.methods (a method's provenance) and
attnbench.measure. This module itself imports nothing: the report's columns below are read by
code that must not load torch.
"""

ENVIRONMENT = (
    "attnbench_version", "git_sha", "torch_version", "python_version", "hostname", "cpu_model", "cpu_count",
    "allocator", "malloc_env", "ld_preload", "device_name", "cuda_version", "tf32_matmul",
    "gpu_name", "gpu_uuid", "gpu_driver", "gpu_memory_bytes", "gpu_sm_clock_mhz", "gpu_max_sm_clock_mhz",
)
# The hardware identity: reports that differ here ran on other machines (compare and history warn).
MACHINE = ("cpu_model", "device_name", "gpu_name")
