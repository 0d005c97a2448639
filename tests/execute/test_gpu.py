"""The CUDA paths: events on the case's own device, the L2 flush, CUDA graphs, device memory
(peak, reserved, the sweep's cap giving 'oom'), NVML clock columns and pinned kernels. Skipped
without a GPU; `make gpu-check` runs them on one."""

import dataclasses

import pytest
import torch

from attnbench.execute.runner import run_case
from attnbench.measure.memory import cuda_peak_bytes
from attnbench.measure.timing import time_cuda
from attnbench.methods.contract import Unsupported
from attnbench.plan.case import Case, Limits, MeasureOptions, make_cases
from tests.conftest import requires_cuda

pytestmark = [requires_cuda, pytest.mark.cuda]
QUICK = MeasureOptions(metrics=("memory", "time"), min_time_s=0.05, max_time_s=0.3)


def test_peak_sees_a_known_allocation_and_reserved_covers_it():
    dev = torch.device("cuda")
    peak, reserved = cuda_peak_bytes(lambda: torch.ones(4096, 4096, device=dev).sum(), dev)
    assert peak == pytest.approx(64 * 2**20, rel=0.01) and reserved >= peak


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_events_time_the_cases_own_device_not_the_current_one():
    torch.cuda.set_device(0)
    a = torch.randn(2048, 2048, device="cuda:1")
    timing = time_cuda(lambda: a @ a, torch.device("cuda:1"), min_time_s=0.05, max_time_s=0.3)
    assert timing.median_ms > 0 and torch.cuda.current_device() == 0
    row = run_case(make_cases(["full"], [1024], device="cuda:1")[0], QUICK)
    assert row["status"] == "ok" and row["peak_mem_bytes"] > 0, row["status_detail"]


def test_a_cold_l2_makes_a_cache_sized_read_slower():
    half_l2 = torch.cuda.get_device_properties(0).L2_cache_size // 2  # bytes: stays in L2 when warm
    x = torch.ones(half_l2 // 4, device="cuda")
    dev = torch.device("cuda")
    cold = time_cuda(x.sum, dev, min_time_s=0.1, max_time_s=0.5, l2="cold").median_ms
    warm = time_cuda(x.sum, dev, min_time_s=0.1, max_time_s=0.5, l2="warm").median_ms
    assert cold > 1.1 * warm


def test_cuda_graph_replays_are_timed_and_rows_say_how():
    case = make_cases(["full"], [1024], device="cuda")[0]
    row = run_case(case, dataclasses.replace(QUICK, cuda_graphs=True))
    assert row["status"] == "ok" and row["time_cuda_graphs"] is True and row["time_l2"] == "cold"


def test_device_memory_cap_makes_an_oom_row():
    from attnbench.execute.workers import WorkerLauncher

    case = make_cases(["full-explicit"], [16384], device="cuda")[0]  # 4 GiB of scores per copy
    row = WorkerLauncher(Limits(max_memory_bytes=256 * 2**20)).run(case, QUICK)
    assert row["status"] == "oom", row["status_detail"]


def test_nvml_clock_columns_are_filled_or_unavailable():
    row = run_case(make_cases(["full"], [1024], device="cuda")[0], QUICK)
    assert row["status"] == "ok"
    for column in ("gpu_sm_clock_mhz_start", "gpu_sm_clock_mhz_end"):
        assert isinstance(row[column], int) or row[column] == "unavailable"
    for column in ("gpu_power_throttled_fraction", "gpu_thermal_throttled_fraction"):
        assert row[column] == "unavailable" or 0 <= row[column] <= 1
    assert row["peak_source"] in ("spec", "measured") and row["peak_mem_reserved_bytes"] >= 0


@pytest.mark.parametrize("method", ["sdpa-flash", "sdpa-efficient", "sdpa-math", "flex"])
def test_pinned_kernels_run_half_precision_and_match_exact_attention(method):
    from attnbench.methods.contract import Shape
    from attnbench.methods.full import explicit_softmax_attention
    from attnbench.methods.registry import create_method

    dev = torch.device("cuda")
    fn = create_method(method).build(Shape(1, 4, 1024, 64), device=dev, dtype=torch.float16, generator=None)
    q, k, v = (torch.randn(1, 4, 1024, 64, device=dev, dtype=torch.float16) for _ in range(3))
    reference = explicit_softmax_attention(q.float(), k.float(), v.float())
    assert (fn(q, k, v).float() - reference).abs().max() < 1e-2


def test_flash_refuses_float32_instead_of_falling_back():
    row = run_case(Case("sdpa-flash", seq_len=1024, device="cuda", dtype="float32", threads=1), QUICK)
    assert row["status"] == "unsupported" and "FLASH_ATTENTION" in row["status_detail"]


def test_the_gpu_is_observed_after_the_warm_up_and_while_timed_calls_run():
    dev, calls, seen = torch.device("cuda"), [], []
    a = torch.randn(2048, 2048, device=dev)

    def call():
        calls.append(1)
        return a @ a
    time_cuda(call, dev, min_time_s=0.05, max_time_s=0.2,
              observe=lambda: seen.append((len(calls), torch.cuda.current_stream(dev).query())))
    assert seen[0][0] >= 3  # the warm-up's calls came first
    assert any(busy is False for _, busy in seen[1:])  # later readings while the queued calls still ran


@pytest.mark.parametrize("method", ["full", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math", "flex"])
@pytest.mark.parametrize("q_len", [1024, 16, 1])
def test_causal_grouped_kernels_match_exact_attention_and_count_the_lower_triangle(method, q_len):
    from attnbench.measure.flops import count_flops
    from attnbench.methods.contract import Shape
    from attnbench.methods.registry import create_method

    dev, shape = torch.device("cuda"), Shape(1, 8, 1024, 64, kv_heads=2, q_seq_len=q_len, causal=True)
    instance = create_method(method)
    try:
        fn = instance.make(shape, device=dev, dtype=torch.bfloat16, generator=None)
    except Unsupported as exc:  # a backend without a kernel for this shape says so; never a fallback
        if method == "sdpa-flash":  # flash runs its own bottom-right causal kernel for a short query block
            raise
        pytest.skip(str(exc))
    q = torch.randn(1, 8, q_len, 64, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, 2, 1024, 64, device=dev, dtype=torch.bfloat16) for _ in range(2))
    visible = torch.ones(q_len, 1024, dtype=torch.bool, device=dev).tril(1024 - q_len)
    scores = q.float() @ k.float().repeat_interleave(4, 1).transpose(-1, -2) / 8
    reference = torch.softmax(scores.masked_fill(~visible, -torch.inf), -1) @ v.float().repeat_interleave(4, 1)
    assert (fn(q, k, v).float() - reference).abs().max() < 2e-2
    if instance.flops_countable() and method != "sdpa-math":
        counted, by_op = count_flops(lambda: fn(q, k, v))
        assert counted == pytest.approx(instance.flops(shape), rel=0.02), by_op


def test_flex_under_compile_runs_the_fused_kernel():
    # --compile around a call that holds a compiled FlexAttention: one graph, and still the fused
    # kernel (the eager one would hold the n x n scores: 32 MiB here).
    n = 4096
    case = Case("flex", batch=1, heads=1, seq_len=n, head_dim=64, device="cuda", compile="default")
    row = run_case(case, MeasureOptions(metrics=("error", "memory")))
    assert row["status"] == "ok", row["status_detail"]
    assert row["error_frobenius"] < 2e-2 and row["peak_mem_bytes"] < n * n * 2 / 4, row["peak_mem_bytes"]


@pytest.mark.parametrize("name, params", [
    ("bigbird", {"block_size": 64, "random_blocks": 2}),
    ("longformer", {"window": 128, "global_tokens": 3}),
    ("sparse_transformer", {"pattern": "strided", "stride": 64}),
    ("sparse_transformer", {"pattern": "fixed", "stride": 64, "summary": 4}),
])
def test_every_sparse_pattern_through_the_compiled_flex_kernel_equals_its_reference(name, params):
    """The CPU suite compiles one pattern (inductor's CPU kernel) and checks the others' masks
    through Dynamo's eager backend; here each goes through the compiled GPU kernel."""
    from attnbench.methods.contract import Shape
    from attnbench.methods.registry import create_method

    dev, shape = torch.device("cuda"), Shape(1, 4, 1024, 64)
    generator = torch.Generator(device=dev).manual_seed(0)
    q, k, v = (torch.randn(1, 4, 1024, 64, device=dev, generator=generator) for _ in range(3))
    built = [create_method(name, backend=backend, **params).make(shape, device=dev, dtype=torch.float32,
                                                                 generator=torch.Generator(device=dev).manual_seed(1))
             for backend in ("reference", "flex")]
    torch.testing.assert_close(built[1](q, k, v), built[0](q, k, v), atol=2e-3, rtol=2e-3)
