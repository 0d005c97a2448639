"""The measurement passes against known answers."""

import types

import pytest
import torch

from attnbench.measure.flops import count_flops, fvcore_flops
from attnbench.measure.machine import env
from attnbench.measure.memory import cpu_peak_bytes
from attnbench.measure.timing import Timing, time_call
from attnbench.methods.full import explicit_softmax_attention
from attnbench.methods.registry import Shape, create_method

B, H, N, D = 1, 2, 256, 32
MATMUL_FLOPS = 4 * B * H * N * N * D


def qkv(n=N, requires_grad=False, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(B, H, n, D, generator=g, dtype=dtype).requires_grad_(requires_grad) for _ in range(3)]


@pytest.mark.parametrize("name", ["full", "full-explicit"])
def test_both_counters_give_the_attention_matmuls(name):
    q, k, v = qkv()
    fn = create_method(name).build(Shape(B, H, N, D), device="cpu", dtype=torch.float32, generator=None)
    counted, by_op = count_flops(lambda: fn(q, k, v))
    traced, _ = fvcore_flops(fn, q, k, v)
    assert counted == pytest.approx(MATMUL_FLOPS, rel=0.01), by_op
    assert traced == pytest.approx(MATMUL_FLOPS, rel=0.01)


def test_backward_counts_three_times_the_forward_matmuls():
    q, k, v = qkv(requires_grad=True)
    counted, _ = count_flops(lambda: explicit_softmax_attention(q, k, v).sum().backward())
    assert counted == 3 * MATMUL_FLOPS


def test_sparse_matmuls_count_stored_entries_not_dense():
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(128, 128, generator=g)
    dense[torch.rand(128, 128, generator=g) > 0.1] = 0
    nnz = int((dense != 0).sum())
    x = torch.randn(128, 32, generator=g)
    for sparse in (dense.to_sparse(), dense.to_sparse_csr()):
        counted, by_op = count_flops(lambda sparse=sparse: torch.sparse.mm(sparse, x))
        assert counted == 2 * nnz * 32, by_op
    counted, _ = count_flops(lambda: dense.to_sparse_csr() @ x)
    assert counted == 2 * nnz * 32


def test_cpu_peak_sees_a_known_allocation_and_nothing_else():
    def allocate():
        big = torch.ones(4096, 4096)  # 64 MiB, alive until return
        return big.sum()

    allocate()
    assert cpu_peak_bytes(allocate) == pytest.approx(64 * 2**20, rel=0.01)
    assert cpu_peak_bytes(lambda: None) == 0


def test_timing_statistics():
    from attnbench.measure.statistics import iqr, level, quiet

    t = Timing(samples_s=(0.001, 0.002, 0.003, 0.004, 0.005), calls_per_sample=1)
    assert t.median_ms == pytest.approx(3.0)
    assert iqr(t.samples_ms) == pytest.approx(2.0)
    assert not quiet(t.samples_ms)
    assert quiet([10, 10.1, 10.2, 10.1, 10.0])
    assert not quiet([10, 10.1, 10.2])  # too few samples to show a spread
    assert level([[1.0, 2.0, 3.0], [8.0]]) == pytest.approx(4.0)  # geometric mean of the medians


def test_time_call_measures_and_restores_threads():
    before = torch.get_num_threads()
    a = torch.randn(256, 256)
    t = time_call(lambda: a @ a, torch.device("cpu"), threads=1, min_time_s=0.05, max_time_s=0.5)
    assert len(t.samples_s) >= 1 and t.median_ms > 0
    assert torch.get_num_threads() == before


def test_nvml_absent_or_failing_is_unavailable_never_an_exception(monkeypatch):
    info = env.nvml_info()  # no GPU here: library missing or no driver
    if not torch.cuda.is_available():
        assert set(info.values()) == {env.UNAVAILABLE}

    class NVMLError(Exception):
        pass

    def fail(*a):
        raise NVMLError("Driver Not Loaded")

    fake = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=fail, nvmlShutdown=lambda: None)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    assert set(env.nvml_info().values()) == {env.UNAVAILABLE}

    # NVML up, but one query unsupported on this board: the others still report.
    fake.nvmlInit = lambda: None
    fake.NVML_CLOCK_SM = 1
    fake.nvmlDeviceGetHandleByIndex = lambda i: "h"
    fake.nvmlDeviceGetName = lambda h: b"Fake GPU"
    fake.nvmlSystemGetDriverVersion = lambda: "999.1"
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=16 * 2**30)
    fake.nvmlDeviceGetClockInfo = fail
    fake.nvmlDeviceGetMaxClockInfo = lambda h, c: 1500
    info = env.nvml_info()
    assert info["gpu_name"] == "Fake GPU" and info["gpu_driver"] == "999.1"
    assert info["gpu_memory_bytes"] == 16 * 2**30 and info["gpu_max_sm_clock_mhz"] == 1500
    assert info["gpu_sm_clock_mhz"] == env.UNAVAILABLE


def test_environment_columns():
    e = env.environment("cpu")
    assert e["torch_version"] == torch.__version__ and e["cpu_count"] >= 1
    assert e["gpu_name"] == env.UNAVAILABLE
    assert e["git_sha"] == "" or len(e["git_sha"].split("+")[0]) == 40


def test_fvcore_failure_is_a_note_not_an_error():
    def untraceable(q, k, v):  # fvcore's matmul handle cannot read a sparse operand's shape
        return (q[0, 0].to_sparse_csr() @ k[0, 0].T).unsqueeze(0).unsqueeze(0)

    q, k, v = qkv(n=8)
    total, note = fvcore_flops(untraceable, q, k, v)
    assert total is None and note.startswith("fvcore could not trace this method")
