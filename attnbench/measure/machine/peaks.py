"""Peak rates a measured FLOP/s is a fraction of (machine_peak_fraction), and the memory bandwidth
a measured bandwidth is a fraction of (bandwidth_peak_fraction: datasheets only).

On a GPU in the table of published dense peaks (attnbench/data/gpu_peaks.toml: each row cites
its datasheet) the peak is the datasheet's for the case's dtype (tf32 for float32 when TF32
matmuls are on): peak_source 'spec'. Elsewhere (every CPU, an unknown GPU, a dtype the table
lacks) it is this machine's dense GEMM rate, measured beside the case (`beside_yardstick`):
peak_source 'measured'. A fused kernel can exceed it; the row then flags the fraction.
"""

from __future__ import annotations

import functools
import statistics
from importlib import resources
from typing import TYPE_CHECKING, Callable

from attnbench import tomlfile

if TYPE_CHECKING:
    from attnbench.measure.timing import Timing

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


def spec_peak_of(device: str, dtype: str) -> float | None:
    """The datasheet peak of the case's GPU for its dtype, or None (a CPU, a GPU the table lacks)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return spec_peak(torch.cuda.get_device_properties(dev).name, dtype, torch.backends.cuda.matmul.allow_tf32)


ROUNDS = 4  # a measured yardstick: the case's timing is split in this many rounds, a GEMM burst around each
# ... when each round has at least this much of the case's minimum time: a burst (tens of ms) must
# stay a small part of the timing it brackets; a shorter budget is one round between two bursts
MIN_ROUND_S = 0.1


def beside_yardstick(device: str, dtype: str, threads: int, timed: Callable[[float, bool], Timing],
                     min_time_s: float) -> tuple[Timing, dict]:
    """The case's timing and the peak its FLOP/s is a fraction of, as the row's columns.

    `timed(share, first)` times the case for `share` of its time budget (`first`: the round that
    warms it up). A datasheet peak where there is one: one round. Elsewhere the machine's GEMM
    rate, measured in the same process in a burst before each of ROUNDS rounds and after the
    last, and each round is judged against the bursts on either side of it (their geometric
    mean): a machine slowed by other work for a while slows a round and its bursts alike, and
    their ratio holds still where the time does not. The fraction is the median over rounds of
    that ratio (each round's speed: the median of its samples); the peak recorded is the rate that
    gives it against the case's time, so achieved / peak is that fraction. machine_peak_spread is
    how far the rounds' fractions differ (their IQR / median; one round: its two bursts'), what
    the flag judges. A case timed for less than ROUNDS x MIN_ROUND_S is one round between two
    bursts of one GEMM call each. A case whose round holds fewer than 3 samples (a call about as
    long as the round) takes the rest of its budget in one more round, so that splitting it costs
    no samples.
    """
    from attnbench.measure.timing import Timing

    spec = spec_peak_of(device, dtype)
    if spec is not None:
        return timed(1.0, True), {"machine_peak_flops_per_s": spec, "peak_source": "spec", "machine_peak_spread": None}
    from attnbench.measure.statistics import iqr
    from attnbench.measure.timing import gemm_rates

    def rate(burst: list[list[float]]) -> float:  # the fastest size's median
        return max(statistics.median(calls) for calls in burst)

    split = ROUNDS if min_time_s >= ROUNDS * MIN_ROUND_S else 1
    short = split == 1  # a fraction of a second of timing: bursts of one call

    def burst() -> float:
        return rate(gemm_rates(device, dtype, threads, short))

    bursts, rounds, left = [burst()], [], split
    while left:
        few = bool(rounds) and len(rounds[-1].samples_s) < 3  # a call about as long as a round
        share = left if few else 1
        rounds.append(timed(share / split, not rounds))
        left -= share
        bursts.append(burst())
    # per round: its speed (1 / its median time) over its bursts' rate, up to the case's FLOPs
    ratios = [1 / (statistics.median(r.samples_s) * (before * after) ** 0.5)
              for r, before, after in zip(rounds, bursts, bursts[1:])]
    timing = Timing.joined(rounds)
    spread = iqr(ratios) / statistics.median(ratios) if len(ratios) > 1 else max(bursts) / min(bursts) - 1
    return timing, {"machine_peak_flops_per_s": 1 / (statistics.median(timing.samples_s) * statistics.median(ratios)),
                    "peak_source": "measured", "machine_peak_spread": spread}


def machine_bandwidth(device: str) -> float | None:
    """The memory bandwidth (bytes/s) an achieved bandwidth is a fraction of: a GPU's datasheet;
    None on a CPU or a GPU the table lacks (no measured yardstick: a copy loop on a CPU says
    little about what a fused kernel's traffic meets)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return spec_bandwidth(torch.cuda.get_device_properties(dev).name)
