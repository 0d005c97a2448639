"""CPU allocator policy for measurements.

glibc hands every large freed buffer back to the OS, so the next large tensor pays one page
fault per 4 KiB: on our 2-core VMs that doubled the time of exact n x n attention and of
sparse methods with large index temporaries, while fused SDPA did not change. CUDA's caching
allocator never pays this. The 'cache' policy (default) keeps freed memory in the process, as
CUDA does, by starting the measuring process with glibc's thresholds raised; 'system' leaves
the environment alone. A user's own MALLOC_* settings or LD_PRELOAD (jemalloc, tcmalloc) are
always kept: the policy is then 'custom'. Every row records the policy and the variables.
"""

from __future__ import annotations

import os
import sys

POLICIES = ("cache", "system")
DEFAULT = "cache"
CACHING_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
_MARK = "ATTNBENCH_ALLOCATOR"


def current_policy() -> str:
    """The policy this process runs under: 'cache', 'system' or 'custom'."""
    if os.environ.get(_MARK) in POLICIES:
        return os.environ[_MARK]
    if os.environ.get("LD_PRELOAD") or any(k.startswith("MALLOC_") for k in os.environ):
        return "custom"
    return "system"


def apply(policy: str) -> None:
    """Make this process run under `policy`, restarting it once with the right environment.

    Call it first thing in a command or script: the restart re-runs the same command line.
    """
    if policy not in POLICIES:
        from attnbench.errors import AttnbenchError

        raise AttnbenchError(f"--allocator must be one of {', '.join(POLICIES)}, not {policy!r}")
    now = current_policy()
    if now == policy or now == "custom" or sys.platform != "linux":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment(policy))  # the same command line


def environment(policy: str = DEFAULT) -> dict:
    """This process's environment as a process started under `policy` needs it (a user's own
    MALLOC_* or LD_PRELOAD kept): a child measuring under that policy then needs no restart."""
    if current_policy() == "custom":
        return dict(os.environ)
    env = {**os.environ, _MARK: policy}
    if policy == "cache":
        env.update(CACHING_ENV)
    else:
        for key in CACHING_ENV:
            env.pop(key, None)
    return env
