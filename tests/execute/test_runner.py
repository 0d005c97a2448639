from dataclasses import dataclass

import pytest
import torch

from attnbench.errors import AttnbenchError
from attnbench.execute.engine import run
from attnbench.execute.runner import run_case
from attnbench.methods.contract import Capabilities, Method
from attnbench.methods.registry import register
from attnbench.plan.case import Case, MeasureOptions, make_cases
from attnbench.results.schema import columns_for

QUICK = MeasureOptions(min_time_s=0.02, max_time_s=0.2)
CONTRACT = ["method", "batch", "heads", "seq_len", "head_dim", "dtype", "device", "mode", "seed", "status",
            "status_detail", "time_ms_median", "time_ms_iqr", "time_samples", "flops", "flops_analytic",
            "peak_mem_bytes", "peak_mem_analytic_bytes", "sparsity", "achieved_flops_per_s"]


def test_a_run_gives_contract_rows_with_consistent_figures():
    cases = make_cases(["full", "full-explicit"], [128, 256], heads=2, head_dim=16, threads=1)
    frame = run(cases, QUICK)
    assert list(frame.columns) == columns_for(cases)  # raw samples go to the sidecar, not the rows
    assert set(CONTRACT) <= set(frame.columns)
    assert (frame["status"] == "ok").all(), frame["status_detail"].tolist()
    assert (frame["flops"] == 4 * 2 * frame["seq_len"] ** 2 * 16).all()
    assert (frame["flops_fvcore"] == frame["flops"]).all()
    assert not frame["flops_mismatch"].any()
    assert (frame["sparsity"] == 1.0).all()
    assert (frame["time_samples"] >= 1).all() and (frame["time_ms_median"] > 0).all()
    ratio = frame["achieved_flops_per_s"] / (frame["flops"] / (frame["time_ms_median"] / 1e3))
    assert ratio.round(9).eq(1).all()


def test_backward_mode_counts_forward_and_backward():
    (case,) = make_cases(["full-explicit"], [128], heads=2, head_dim=16, mode="backward", threads=1)
    row = run_case(case, MeasureOptions(metrics=("flops", "memory")))
    assert row["status"] == "ok" and row["flops"] == 3 * 4 * 2 * 128**2 * 16
    assert row["flops_fvcore"] is None  # fvcore traces the forward only


def test_full_explicit_peak_memory_sees_the_square_buffers_and_full_does_not():
    rows = {c.method: run_case(c, MeasureOptions(metrics=("memory",)))
            for c in make_cases(["full-explicit", "full"], [2048], heads=2, head_dim=32, threads=1)}
    explicit, fused = rows["full-explicit"], rows["full"]
    assert explicit["peak_mem_bytes"] == pytest.approx(explicit["peak_mem_analytic_bytes"], rel=0.10)
    assert explicit["peak_mem_bytes"] >= 2 * 2 * 2048**2 * 4  # scores and softmax, 2 heads
    assert fused["peak_mem_bytes"] < explicit["peak_mem_bytes"] / 10


@pytest.mark.slow
def test_failures_become_rows(temp_method):
    @register(temp_method("toy-nan"))
    @dataclass(frozen=True)
    class Nan(Method):
        def build(self, shape, *, device, dtype, generator):
            return lambda q, k, v: q * float("nan")

        def flops(self, shape):
            return 1

        def scores_computed(self, shape):
            return 1

    @register(temp_method("toy-broken"))
    @dataclass(frozen=True)
    class Broken(Nan):
        def build(self, shape, *, device, dtype, generator):
            def fn(q, k, v):
                raise ValueError("boom\nsecond line")
            return fn

    @register(temp_method("toy-oom"))
    @dataclass(frozen=True)
    class Oom(Nan):
        def build(self, shape, *, device, dtype, generator):
            def fn(q, k, v):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB")
            return fn

    @register(temp_method("toy-blocks"))
    @dataclass(frozen=True)
    class Blocks(Nan):
        capabilities = Capabilities(seq_multiple=64, backward=False)

    cases = make_cases(["toy-nan", "toy-broken", "toy-oom", "toy-blocks"], [100], heads=1, head_dim=4)
    cases += make_cases(["toy-blocks"], [128], heads=1, head_dim=4, mode="backward")
    status = [(r["method"], r["status"], r["status_detail"]) for r in map(run_case, cases)]
    assert status == [
        ("toy-nan", "nan", "the output holds NaN or Inf"),
        ("toy-broken", "error", "ValueError: boom"),
        ("toy-oom", "oom", "OutOfMemoryError: CUDA out of memory. Tried to allocate 1 TiB"),
        ("toy-blocks", "unsupported", "toy-blocks needs seq_len divisible by 64"),
        ("toy-blocks", "unsupported", "toy-blocks has no backward pass"),
    ]


def test_case_validation_is_one_line():
    for kwargs, message in (({"methods": ["nope"]}, "unknown method"), ({"seq_lens": [0]}, "positive"),
                            ({"params": {"features": ["1"]}}, "no selected method has a parameter 'features'"),
                            ({"device": "tpu"}, "device"), ({"mode": "sideways"}, "forward, backward or train"),
                            ({"dtype": "int4"}, "dtype")):
        args = {"methods": ["full"], "seq_lens": [64], **kwargs}
        with pytest.raises(AttnbenchError, match=message) as err:
            make_cases(args.pop("methods"), args.pop("seq_lens"), args.pop("params", None), **args)
        assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(AttnbenchError, match="no CUDA device"):
        make_cases(["full"], [64], device="cuda")


def test_cases_are_the_cartesian_product_with_defaults_filled(temp_method):
    from attnbench.methods.contract import param

    @register(temp_method("toy-grid"))
    @dataclass(frozen=True)
    class Grid(Method):
        a: int = param(1, "a", low=1)
        b: str = param("x", "b", choices=("x", "y"))

    cases = make_cases(["toy-grid", "full"], [64, 128], {"a": ["2", "3"]})
    assert [(c.method, dict(c.params), c.seq_len) for c in cases] == [
        ("toy-grid", {"a": 2, "b": "x"}, 64), ("toy-grid", {"a": 2, "b": "x"}, 128),
        ("toy-grid", {"a": 3, "b": "x"}, 64), ("toy-grid", {"a": 3, "b": "x"}, 128),
        ("full", {}, 64), ("full", {}, 128)]
    assert isinstance(cases[0], Case)


@pytest.mark.parametrize("name, params, n, message", [
    ("smartbird", {"k": 100000}, 64, "the largest k here is 64"),
    ("nystromformer", {"landmarks": 100}, 64, "the largest landmarks here is 64"),
    ("longformer", {"window": 200}, 64, "the largest window here is 128"),
    ("longformer", {"window": 16, "global_tokens": 65}, 64, "the largest global_tokens here is 64"),
    ("sparse_transformer", {"pattern": "fixed", "stride": 16, "summary": 17}, 64, "the largest summary here is 16"),
])
def test_a_parameter_the_shape_cannot_hold_is_refused_not_clamped(name, params, n, message):
    (case,) = make_cases([name], [n], {k: [v] for k, v in params.items()}, heads=1, head_dim=8, threads=1)
    row = run_case(case, MeasureOptions(metrics=("flops",)))
    assert row["status"] == "unsupported" and message in row["status_detail"], row["status_detail"]


def test_bigbird_records_how_many_random_blocks_it_could_draw():
    cases = make_cases(["bigbird"], [64, 256], {"block_size": [16]}, heads=1, head_dim=8, threads=1)
    few, enough = (run_case(c, MeasureOptions(metrics=("flops",))) for c in cases)
    assert few["status"] == enough["status"] == "ok" and few["param_random_blocks"] == 3
    assert few["random_blocks_drawn"] == 0.0 and enough["random_blocks_drawn"] == 3.0  # 4 blocks leave none


def test_warnings_are_caught_and_those_that_may_matter_go_in_the_row_once(monkeypatch):
    import warnings

    from attnbench.execute import runner

    def noisy(case, options, row):
        for _ in range(12):  # what torch says on every call while it picks an SDPA kernel
            warnings.warn("Flash attention requires q,k,v to have the same last dimension and to be less than or "
                          "equal to 256. Got Query.size(-1): 64, Key.size(-1): 64, Value.size(-1): 128 "
                          "(Triggered internally at sdp_utils_cpp.h:94.)", UserWarning, stacklevel=1)
            warnings.warn("the input was clamped to the kernel's range", UserWarning, stacklevel=1)
        warnings.warn("this argument is deprecated", DeprecationWarning, stacklevel=1)
        row["status"] = "ok"
    monkeypatch.setattr(runner, "_measure", noisy)
    with warnings.catch_warnings(record=True) as printed:
        warnings.simplefilter("always")
        first = runner.run_case(Case("full", seq_len=64, threads=1))
        second = runner.run_case(Case("full", seq_len=64, threads=1))
    assert printed == []  # nothing reaches the terminal
    for row in (first, second):  # every case says it, once, not only the first of the process
        assert row["status"] == "ok" and row["status_detail"] == "warned: the input was clamped to the kernel's range"
