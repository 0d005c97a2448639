"""Real kernels as methods (pinned SDPA backends, FlexAttention, the sparse methods' flex backend,
other packages' kernels), torch.compile, set-up cost columns, peak rates and GPU bookkeeping that
can be checked without a GPU. Every compiled case here is small (FlexAttention compiles once per
pattern and shape; inductor caches it)."""

import types

import pytest
import torch
import torch.nn.functional as F

from attnbench.execute.runner import run_case
from attnbench.measure.machine import env
from attnbench.measure.machine.peaks import gpu_spec, gpu_table, spec_peak
from attnbench.methods.contract import Shape
from attnbench.methods.registry import create_method
from attnbench.metrics.time import clock_noisy
from attnbench.plan.case import Case, MeasureOptions, make_cases
from tests.conftest import cli

SHAPE = Shape(1, 2, 256, 16)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 2, 256, 16, generator=g) for _ in range(3)]


def _fn(name, **params):
    return create_method(name, **params).build(SHAPE, device=torch.device("cpu"), dtype=torch.float32,
                                               generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["sdpa-math", "flex"])
def test_exact_kernels_equal_sdpa(name, request):
    if name == "flex":  # dense FlexAttention through the eager backend; the compiled kernel: bigbird's
        request.getfixturevalue("eager_compile")
    q, k, v = _inputs()
    assert torch.allclose(_fn(name)(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["sdpa-efficient", "sdpa-cudnn"])
def test_a_backend_that_cannot_run_on_cpu_is_unsupported_with_torchs_reason(name):
    row = run_case(Case(name, seq_len=256, heads=2, head_dim=16, threads=1), MeasureOptions(metrics=("flops",)))
    assert row["status"] == "unsupported" and "torch has no" in row["status_detail"]


# One pattern through inductor's compiled CPU kernel (seconds of compilation per mask in a fresh
# clone); the others through Dynamo's eager backend, which checks the masks themselves, as the
# kernel applies them. tests/execute/test_gpu.py runs every pattern through the compiled GPU kernel.
@pytest.mark.parametrize("name, params, compiled", [
    pytest.param("bigbird", {"block_size": 32, "random_blocks": 2}, True,
                 marks=[pytest.mark.xdist_group("bigbird-kernel"), pytest.mark.slow]),
    ("longformer", {"window": 64, "global_tokens": 3}, False),
    ("sparse_transformer", {"pattern": "strided", "stride": 32}, False),
    ("sparse_transformer", {"pattern": "fixed", "stride": 32, "summary": 4}, False),
])
def test_flex_backend_equals_the_reference_and_the_dense_masked_softmax(name, params, compiled, request):
    if not compiled:
        request.getfixturevalue("eager_compile")
    q, k, v = _inputs(1)
    reference, flex = _fn(name, **params), _fn(name, backend="flex", **params)
    out = flex(q, k, v)
    assert torch.allclose(out, reference(q, k, v), atol=1e-5, rtol=0)
    method = create_method(name, backend="flex", **params)
    mask = method.mask(flex, q, k)  # the pattern, whichever backend computes it
    assert torch.equal(mask, create_method(name, **params).mask(reference, q, k))
    dense = torch.softmax((q @ k.transpose(-1, -2) / 4).masked_fill(~mask, -torch.inf), -1) @ v
    assert torch.allclose(out, dense, atol=1e-5, rtol=0)
    scores = method.diagnostics(flex, q, k, v)["scores_computed"]  # whole 128 x 128 tiles
    assert scores >= mask.sum() and scores % (128 * 128) == 0


@pytest.mark.slow
@pytest.mark.xdist_group("bigbird-kernel")  # the compiled kernel of the bigbird case above, in the same worker
def test_flex_rows_report_compile_time_and_the_tiles_they_compute():
    # Two random blocks: the pattern (this seed's draw) scores 58/64 of the pairs, and FlexAttention
    # computes whole 128 x 128 tiles, of which it touches all 4. (Three cover every pair at n = 256.)
    cases = make_cases(["bigbird"], [256], {"block_size": [32], "random_blocks": [2], "backend": ["reference", "flex"]},
                       heads=2, head_dim=16, threads=1)
    reference, flex = (run_case(c, MeasureOptions(metrics=("sparsity", "flops"))) for c in cases)
    assert flex["status"] == "ok", flex["status_detail"]
    assert flex["compile_s"] > 0 and reference["compile_s"] is None
    assert reference["sparsity"] == 58 / 64 and flex["sparsity"] == 1.0
    assert flex["scores_computed"] == 2 * 256 * 256 and flex["random_blocks_drawn"] == reference["random_blocks_drawn"]
    assert flex["flops_analytic"] == 4 * flex["scores_computed"] * 16


@pytest.mark.slow
def test_compile_runs_a_method_through_torch_compile(tmp_path):
    out = tmp_path / "c.csv"
    result = cli("run", "-m", "full-explicit", "-n", "128", "--heads", "1", "--head-dim", "16", "--compile",
                 "--metrics", "flops", "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    import pandas as pd

    row = pd.read_csv(out).iloc[0]
    assert row["status"] == "ok" and row["compile"] == "default" and row["compile_s"] > 0 and row["build_ms"] > 0


def test_flex_under_compile_nests_its_compiled_kernel_in_the_outer_graph(eager_compile):
    # --compile wraps the call, which already holds a compiled FlexAttention: Dynamo traces through
    # the inner torch.compile (eager_compile: no inductor here; tests/execute/test_gpu.py runs inductor's
    # kernel on a GPU and checks its memory).
    case = Case("flex", batch=1, heads=2, seq_len=128, head_dim=16, threads=1, compile="default", causal=True)
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["status"] == "ok", row["status_detail"]
    assert row["compile"] == "default" and row["kernel_compile_mode"] == "default" and row["compile_s"] > 0
    assert row["error_frobenius"] < 1e-5


def test_compile_mode_and_l2_are_checked_in_one_line():
    for args in (["--compile-mode", "fastest"], ["--l2", "hot"]):
        result = cli("run", "-m", "full", "-n", "128", *args)
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_build_time_and_bandwidth_are_filled_for_every_method_that_runs():
    from attnbench.methods import BUILTIN

    options = MeasureOptions(metrics=("flops",))
    skip = {"flex", "sdpa-efficient", "sdpa-cudnn"}  # flex: compiled above; the other two need CUDA
    for name in sorted(set(BUILTIN) - skip):
        row = run_case(make_cases([name], [256], heads=2, head_dim=16, threads=1)[0], options)
        assert row["status"] in ("ok", "unsupported"), (name, row["status_detail"])
        if row["status"] == "ok":
            assert row["build_ms"] >= 0 and row["bytes_moved_analytic"] > 0, name


def test_time_reports_bandwidth_and_the_measured_peak_on_cpu():
    row = run_case(Case("full-explicit", seq_len=256, heads=2, head_dim=16, threads=1),
                   MeasureOptions(metrics=("time",), min_time_s=0.01, max_time_s=0.05))
    vectors = 2 * 256 * 16 * 4
    assert row["bytes_moved_analytic"] == 4 * vectors + 4 * 2 * 256**2 * 4  # scores and probabilities, twice
    assert row["achieved_bandwidth_bytes_per_s"] == pytest.approx(
        row["bytes_moved_analytic"] / (row["time_ms_median"] / 1e3))
    assert row["peak_source"] == "measured" and row["time_l2"] == "" and row["gpu_power_throttled_fraction"] is None


def test_cuda_graphs_on_cpu_is_an_unsupported_row():
    row = run_case(Case("full", seq_len=128, threads=1), MeasureOptions(metrics=("time",), cuda_graphs=True))
    assert row["status"] == "unsupported" and "CUDA" in row["status_detail"]


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-40GB", "A100 40GB"), ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"), ("NVIDIA L40S", "L40S"), ("NVIDIA L40", "L40"),
    ("NVIDIA L4", "L4"), ("NVIDIA GeForce RTX 4090", "RTX 4090"), ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla V100-PCIE-32GB", "V100 PCIe"), ("Some Future GPU", None),
])
def test_gpu_names_find_their_datasheet_row(name, expected):
    row = gpu_spec(name)
    assert (row and row["name"]) == expected


def test_spec_peaks_by_dtype_and_tf32_and_every_row_cites_a_source():
    assert spec_peak("NVIDIA H100 80GB HBM3", "bfloat16", tf32=False) == pytest.approx(989.4e12)
    assert spec_peak("NVIDIA H100 80GB HBM3", "float32", tf32=False) == pytest.approx(67e12)
    assert spec_peak("NVIDIA H100 80GB HBM3", "float32", tf32=True) == pytest.approx(494.7e12)
    assert spec_peak("Tesla V100-SXM2-16GB", "bfloat16", tf32=False) is None  # no bf16 tensor cores
    assert spec_peak("NVIDIA H100 80GB HBM3", "float64", tf32=False) is None
    for row in gpu_table():
        assert row["source"].startswith("NVIDIA") and "https://" in row["source"] and row["bandwidth"] > 0


def _reading(device):
    with env.gpu_monitor(device) as read:
        return read()


def test_gpu_readings_without_nvml_or_with_failing_nvml_are_unavailable(monkeypatch):
    class NVMLError(Exception):
        pass

    def fail(*a):
        raise NVMLError("Driver Not Loaded")

    unavailable = dict.fromkeys(("sm_clock_mhz", "power_throttle_ns", "thermal_throttle_ns"), "unavailable")
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)  # not installed
    assert _reading("cuda") == unavailable
    fake = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=fail, nvmlShutdown=lambda: None)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    assert _reading("cuda:0") == unavailable
    fake.nvmlInit, fake.NVML_CLOCK_SM = (lambda: None), 1
    fake.NVML_PERF_POLICY_POWER, fake.NVML_PERF_POLICY_THERMAL = 0, 1
    fake.nvmlDeviceGetHandleByIndex = lambda i: "h"
    fake.nvmlDeviceGetClockInfo = lambda h, c: 1755
    fake.nvmlDeviceGetViolationStatus = lambda h, policy: types.SimpleNamespace(violationTime=[7, 9][policy])
    assert _reading("cuda:0") == {"sm_clock_mhz": 1755, "power_throttle_ns": 7, "thermal_throttle_ns": 9}
    fake.nvmlDeviceGetViolationStatus = fail  # a board without the counters
    assert _reading("cuda:0")["power_throttle_ns"] == "unavailable"


def test_throttling_is_the_share_of_the_timed_window_nvml_counted():
    from attnbench.metrics.time import gpu_columns

    def reading(clock, power_ns, thermal_ns):
        return {"sm_clock_mhz": clock, "power_throttle_ns": power_ns, "thermal_throttle_ns": thermal_ns}
    columns = gpu_columns([(10.0, reading(1980, 5_000, 0)), (10.5, reading(1975, 5_000, 0)),
                           (12.0, reading(1970, 5_000 + 500_000_000, 0))])  # throttled 0.5 s of 2 s
    assert columns == {"gpu_sm_clock_mhz_start": 1980, "gpu_sm_clock_mhz_end": 1970,
                       "gpu_power_throttled_fraction": 0.25, "gpu_thermal_throttled_fraction": 0.0}
    assert clock_noisy(columns)
    unread = gpu_columns([(1.0, reading("unavailable", "unavailable", "unavailable"))])
    assert unread["gpu_power_throttled_fraction"] == "unavailable" and not clock_noisy(unread)


def test_a_moving_clock_or_a_throttled_window_makes_the_timing_noisy():
    quiet = {"gpu_power_throttled_fraction": 0.0, "gpu_thermal_throttled_fraction": 0.0}
    assert not clock_noisy({"gpu_sm_clock_mhz_start": 1980, "gpu_sm_clock_mhz_end": 1950, **quiet})
    assert clock_noisy({"gpu_sm_clock_mhz_start": 1980, "gpu_sm_clock_mhz_end": 1700, **quiet})
    assert clock_noisy({"gpu_sm_clock_mhz_start": 1980, "gpu_sm_clock_mhz_end": 1980, **quiet,
                        "gpu_thermal_throttled_fraction": 0.02})
    assert not clock_noisy({"gpu_sm_clock_mhz_start": "unavailable", "gpu_power_throttled_fraction": "unavailable"})


def test_missing_kernel_peers_are_listed_with_their_install_hint_and_refused_in_one_line():
    from attnbench.methods.registry import missing_peers

    missing = missing_peers()
    if "peer-flash-attn" not in missing:
        pytest.skip("flash-attn is installed here")
    listed = cli("list", "peer-*")
    assert "peer-flash-attn" in listed.stdout and "not installed" in listed.stdout
    result = cli("run", "-m", "peer-flash-attn", "-n", "128")
    assert result.returncode != 0 and "pip install flash-attn" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
