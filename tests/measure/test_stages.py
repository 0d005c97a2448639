"""Stages: every method declares them, FLOPs and time go to the stage they run in (a backward op
to the stage whose forward made it), and the stages' FLOPs sum to the flops metric's count."""

import pytest
import torch

from attnbench.execute.calls import make_call
from attnbench.measure.flops import count_flops, count_flops_by_stage
from attnbench.measure.profile import profile_call
from attnbench.measure.stages import OTHER, recording
from attnbench.methods.contract import Shape, stage
from attnbench.methods.registry import create_method, get_method, list_methods
from tests.conftest import SMALL, requires_cuda

COMPILED = {"flex"}  # its one stage wraps a compiled kernel: its FLOPs are not countable (flops_countable)


def _call(name: str, mode: str, n: int = 64):
    method = create_method(name, **SMALL.get(name, {}))
    shape = Shape(1, 2, n, 16)
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 16, generator=generator) for _ in range(3))
    with torch.set_grad_enabled(mode != "forward"):
        fn = method.make(shape, device=torch.device("cpu"), dtype=torch.float32, generator=generator)
    return method, make_call(fn, q, k, v, mode)


def _runnable(name: str, mode: str) -> bool:
    """Runs here: supported, countable, and a kernel this CPU has (SDPA's flash and math)."""
    if name in COMPILED or name in ("sdpa-efficient", "sdpa-cudnn"):
        return False
    return create_method(name, **SMALL.get(name, {})).unsupported(Shape(1, 2, 64, 16), mode) is None


@pytest.mark.parametrize("name", list_methods())
def test_every_method_declares_stages_that_hold_all_its_flops(name):
    assert get_method(name).stages, f"{name} declares no stages"
    for mode in ("forward", "backward"):
        if not _runnable(name, mode):
            continue
        method, call = _call(name, mode)
        total, by_op, by_stage = count_flops_by_stage(call)
        assert sum(by_stage.values()) == total > 0
        assert set(by_stage) - {OTHER} <= set(method.stages), f"{name} runs undeclared stages"
        assert by_stage.get(OTHER, 0) == 0, f"{name} does FLOPs outside its stages"
        plain, _ = count_flops(_call(name, mode)[1])  # the same draw: a fresh build from the same seed
        assert plain == total


def test_backward_flops_go_to_the_stage_whose_forward_made_them():
    w = torch.randn(32, 32, requires_grad=True)
    x = torch.randn(8, 32, requires_grad=True)

    def call():
        with stage("first"):
            h = x @ w  # 2 * 8 * 32 * 32 forward; two such matmuls backward
        with stage("second"):
            out = (h.relu() @ w).sum()
        out.backward()

    total, _, by_stage = count_flops_by_stage(call)
    one = 2 * 8 * 32 * 32
    assert by_stage == {"first": 3 * one, "second": 3 * one} and total == 6 * one


def test_a_nested_stage_is_named_by_its_path_and_a_stage_is_free_without_a_listener():
    with recording() as recorder:
        with stage("layer"), stage("attention"):
            assert recorder.current() == "layer/attention"
        assert recorder.current() == OTHER
    assert list(recorder.seen) == ["layer", "layer/attention"]
    marker = stage("alone")
    with marker:
        pass
    assert marker.listener is None  # no recorder and no profiler: nothing was entered


def test_a_users_own_profiler_sees_the_stages_as_ranges():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        with stage("mine"):
            torch.ones(4) @ torch.ones(4)
    assert "mine" in {event.name for event in profiler.events()}


def test_a_profile_gives_every_moment_of_the_call_to_one_stage():
    big = 1 << 20

    def call():
        with stage("allocates"):
            torch.ones(big // 4).sum()  # one 1 MiB float32 buffer
        with stage("multiplies"):
            torch.randn(64, 64) @ torch.randn(64, 64)
        torch.zeros(16)  # outside every stage

    profile = profile_call(call, torch.device("cpu"), calls=2)
    stages = {s.name: s for s in profile.stages}
    assert list(stages) == ["allocates", "multiplies", OTHER]
    assert sum(s.seconds for s in profile.stages) == pytest.approx(profile.seconds, rel=1e-6)
    assert stages["allocates"].allocated_bytes >= big
    assert any(op.startswith("aten::mm") for op in stages["multiplies"].ops)  # by name: their order is the clock's
    assert any(op.startswith("aten::zeros") for op in stages[OTHER].ops)
    assert not any(op.startswith("aten::mm") for op in stages[OTHER].ops)


def test_a_backward_profile_gives_each_backward_op_to_its_forward_stage():
    x = torch.randn(256, 256, requires_grad=True)

    def call():
        with stage("exp"):
            y = x.exp()  # its backward multiplies by exp(x): an op the forward does not run
        with stage("sum"):
            total = y.sum()
        total.backward()

    profile = profile_call(call, torch.device("cpu"), calls=1)
    stages = {s.name: s for s in profile.stages}
    assert any(op.startswith("aten::mul") for op in stages["exp"].ops)
    assert not any(op.startswith("aten::mul") for op in stages[OTHER].ops)


@requires_cuda
@pytest.mark.cuda  # scenarios/gpu_check.sh runs the tests marked so
def test_a_cuda_profile_counts_the_stages_kernels():
    def call():
        with stage("kernel"):
            torch.randn(512, 512, device="cuda") @ torch.randn(512, 512, device="cuda")

    profile = profile_call(call, torch.device("cuda"), calls=2)
    stages = {s.name: s for s in profile.stages}
    assert stages["kernel"].seconds > 0 and stages["kernel"].ops
    assert sum(s.seconds for s in profile.stages) == pytest.approx(profile.seconds, rel=1e-6)


def test_a_row_crosses_to_a_worker_with_its_stages():
    import pickle

    from attnbench.results.schema import Row

    row = Row({"method": "full"}, samples=[[1.0]], stages=[{"stage": "fused kernel", "profile_ms": 1.0}])
    back = pickle.loads(pickle.dumps(row))
    assert back.stages == row.stages and back.samples == row.samples


def test_the_profiling_page_names_every_declared_stage():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "profiling.md").read_text()
    missing = {name: [s for s in get_method(name).stages if s not in page] for name in list_methods()}
    assert not {name: stages for name, stages in missing.items() if stages}
