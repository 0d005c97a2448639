"""The CUDA paths, checked without a GPU: each test stands in for what a GPU would show (a device
index torch requires, a generator on the wrong device, a tensor made on the CPU) and fails on
code that would break on the first GPU run. tests/test_gpu.py runs them for real on a GPU."""

import pytest
import torch

from attnbench.case import Case, Limits, MeasureOptions

QUICK = MeasureOptions(metrics=("flops",), min_time_s=0.0, max_time_s=0.0)


def test_the_device_memory_cap_names_the_device_by_index(monkeypatch):
    from attnbench import workers

    calls = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda dev: 2**20)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda dev: type("Properties", (), {"total_memory": 2**30})())

    def set_fraction(fraction, dev):  # torch refuses a device without an index here
        assert isinstance(dev.index, int), "torch.cuda.set_per_process_memory_fraction needs an index"
        calls.append((fraction, dev))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", set_fraction)
    assert workers._cap_device_memory("cuda", 2**29) == 2**30
    assert workers._cap_device_memory("cuda:1", 2**29) == 2**30
    assert [dev for _, dev in calls] == [torch.device("cuda", 3), torch.device("cuda", 1)]
    assert calls[0][0] == pytest.approx((2**20 + 2**29) / 2**30)


@pytest.mark.skipif(torch.cuda.is_available(), reason="stands in for a worker whose set-up raises: needs no CUDA")
def test_a_worker_whose_set_up_raises_says_why_in_the_row():
    from attnbench.workers import WorkerLauncher

    # Capping device memory on a torch without CUDA raises in the worker, outside the case.
    case = Case("full", batch=1, heads=1, seq_len=32, head_dim=8, device="cuda", threads=1)
    row = WorkerLauncher(Limits(max_memory_bytes=2**28)).run(case, QUICK)
    assert row["status"] == "crashed"
    assert "Torch not compiled with CUDA enabled" in row["status_detail"], row["status_detail"]


class _GeneratorDevices(torch.overrides.TorchFunctionMode):
    """Records every op handed a generator of another device than its tensors' (what CUDA refuses:
    "Expected a 'cuda' device type for generator"). `stands_for` names generators standing in
    for a device that has none of its own here (meta)."""

    def __init__(self, stands_for: dict) -> None:
        super().__init__()
        self.stands_for, self.mismatches = stands_for, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        generator = kwargs.get("generator")
        if generator is not None:
            where = self.stands_for.get(id(generator), generator.device.type)
            leaves = torch.utils._pytree.tree_leaves((args, kwargs))
            devices = {t.device.type for t in leaves if isinstance(t, torch.Tensor)}
            if kwargs.get("device") is not None:
                devices.add(torch.device(kwargs["device"]).type)
            devices = devices or {"cpu"}  # a factory on the default device
            if devices != {where}:
                self.mismatches.append(f"{getattr(func, '__name__', func)}: a {where} generator for {sorted(devices)}")
        return func(*args, **kwargs)


# Every method with its defaults, and the options that build more (a convolution, a dense mask).
VARIANTS = [(name, {}) for name in __import__("attnbench.registry", fromlist=["x"]).list_methods()] + [
    ("nystromformer", {"conv": 3}), ("sbm", {"variant": "bernoulli"}), ("sbm", {"multi_edges": True})]


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=[f"{n}{p or ''}" for n, p in VARIANTS])
def test_no_method_hands_a_cpu_generator_to_an_op_on_its_device(name, params, monkeypatch):
    from attnbench.contract import Shape, Unsupported
    from attnbench.registry import create_method

    real, stands_for = torch.Generator, {}

    class Generator(real):  # meta has no generator: a CPU one stands in for it
        def __new__(cls, device="cpu"):
            made = real.__new__(cls, "cpu")
            if torch.device(device).type == "meta":
                stands_for[id(made)] = "meta"
            return made

        def __init__(self, device="cpu"):
            pass
    monkeypatch.setattr(torch, "Generator", Generator)
    shape, method = Shape(1, 2, 256, 16), create_method(name, **params)
    check = _GeneratorDevices(stands_for)
    with check:
        try:
            fn = method.build(shape, device=torch.device("meta"), dtype=torch.float32,
                              generator=real().manual_seed(0))
            q, k, v = (torch.randn(1, 2, 256, 16, device="meta") for _ in range(3))
            if not method.compiled():  # a failed compilation would leave Dynamo's cache to later tests
                fn(q, k, v)
        except (RuntimeError, ValueError, NotImplementedError, Unsupported) as exc:  # meta tensors hold no values
            if "meta" not in str(exc).lower():  # (a kernel probe on meta tensors is refused as Unsupported)
                raise
    assert not check.mismatches, check.mismatches


def test_the_matrix_free_error_makes_its_vectors_on_the_inputs_device():
    from attnbench.measure.error import DENSE_ATTENTION_LIMIT, attention_error
    from attnbench.methods.full import explicit_softmax_attention

    n = DENSE_ATTENTION_LIMIT + 64  # past the dense limit: power iteration
    q, k = (torch.randn(1, 1, n, 8, generator=torch.Generator().manual_seed(i)) for i in range(2))

    def approx(q, k, v):
        return explicit_softmax_attention(q, k, v) * 1.01
    # Inputs on the CPU, while a tensor made without a device lands on another one (as the CPU
    # does for CUDA inputs): any vector not made on the inputs' device fails the run.
    with torch.device("meta"):
        error = attention_error(approx, explicit_softmax_attention, q, k, q.double(), k.double())
    assert error == pytest.approx(0.01, rel=1e-3)


def test_a_failing_attention_error_estimate_is_an_error_row_not_a_blank(monkeypatch):
    from attnbench.measure import error as instruments
    from attnbench.runner import run_case

    def broken(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")
    monkeypatch.setattr(instruments, "attention_error", broken)
    case = Case("full", batch=1, heads=1, seq_len=64, head_dim=8, threads=1)
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["status"] == "error" and "same device" in row["status_detail"]
    # A kernel that takes no V of another width leaves the column empty, and says nothing else went wrong.
    assert run_case(Case("peer-linformer", batch=1, heads=1, seq_len=64, head_dim=8, threads=1),
                    MeasureOptions(metrics=("error",)))["status"] == "ok"


def test_the_gemm_yardstick_grows_past_a_slow_first_call(monkeypatch):
    import time

    from attnbench.measure import timing

    real_mm, sizes, first = torch.mm, [], [True]

    def mm(a, b):  # the first GEMM of a process pays cuBLAS handle creation and lazy loading
        if first:
            first.pop()
            time.sleep(0.05)
        sizes.append(a.shape[0])
        return real_mm(a, b)
    monkeypatch.setattr(torch, "mm", mm)
    monkeypatch.setattr(timing, "time_call", lambda call, *args, **kwargs: (call(), timing.Timing((1.0,), 1))[1])
    timing._measure_matmul_rate(torch.device("cpu"), torch.float32, 1)
    assert sizes[-1] > 256, "a launch-bound 256^3 GEMM is no peak"


def test_make_gpu_check_names_one_report_throughout(tmp_path):
    import os
    import re
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no make here")
    # A clock that moves a second at every reading: the report name must be read once.
    clock = tmp_path / "date"
    clock.write_text(f"#!/bin/sh\nn=$(cat {tmp_path}/tick 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/tick\n"
                     "echo 20261202-0000$((10 + n))\n")
    clock.chmod(0o755)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    plan = subprocess.run(["make", "-n", "gpu-check"], cwd=root, capture_output=True, text=True, check=True,
                          env=env).stdout
    names = re.findall(r"reports/gpu-check-(\d{8}-\d{6})", plan)
    assert len(names) >= 6 and len(set(names)) == 1, names


class _ForwardOnly(torch.autograd.Function):
    """A kernel with a forward and no backward for the case (as a fused GPU kernel can be)."""

    @staticmethod
    def forward(ctx, q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no backward kernel for this head_dim")


@pytest.mark.parametrize("mode", ["forward", "backward", "train"])
def test_a_kernel_without_a_backward_is_unsupported_in_backward_modes(mode, monkeypatch):
    from attnbench.methods import sdpa
    from attnbench.runner import run_case

    monkeypatch.setattr(sdpa, "pinned", lambda backend, *shape_and_device: _ForwardOnly.apply)
    row = run_case(Case("sdpa-math", batch=1, heads=1, seq_len=64, head_dim=8, mode=mode, threads=1), QUICK)
    if mode == "forward":
        assert row["status"] == "ok", row["status_detail"]
    else:
        assert row["status"] == "unsupported", row["status_detail"]
        assert "MATH backward kernel" in row["status_detail"] and "head_dim" in row["status_detail"]


def test_a_ray_sweep_leaves_the_device_check_to_its_tasks(monkeypatch):
    from tests.conftest import cli

    # The driver (this machine) may have no GPU; its cluster's nodes do.
    planned = cli("sweep", "-m", "full", "-n", "64", "--device", "cuda:1", "--executor", "ray", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    if not torch.cuda.is_available():
        local = cli("sweep", "-m", "full", "-n", "64", "--device", "cuda", "--dry-run")
        assert local.returncode != 0 and "no CUDA device is visible here" in local.stderr


def test_a_ray_task_checks_its_device_on_its_node_and_runs_on_its_gpu(monkeypatch):
    from attnbench import case as cases
    from attnbench import ray_launcher, workers

    case = Case("full", batch=1, heads=1, seq_len=32, head_dim=8, device="cuda:1", threads=1)
    if not torch.cuda.is_available():  # a node without a GPU: an error row that names the node
        row = ray_launcher._run_isolated(case, QUICK, Limits())
        assert row["status"] == "error" and "on Ray node" in row["status_detail"] and row["device"] == "cuda:1"
    ran = []

    class Launcher:  # stands in for the worker: records the device the case runs on
        def __init__(self, limits):
            pass

        def run(self, case, options):
            ran.append(case.device)
            return {"device": case.device}

        def close(self):
            pass
    monkeypatch.setattr(workers, "WorkerLauncher", Launcher)
    monkeypatch.setattr(cases, "check_device", lambda device, here=True: device)
    row = ray_launcher._run_isolated(case, QUICK, Limits())
    # Ray shows the task its one GPU as cuda:0: the case runs on `cuda`, its row keeps `cuda:1`.
    assert ran == ["cuda"] and row["device"] == "cuda:1"


def test_flex_past_the_recompile_limit_is_an_error_row_never_the_eager_kernel(monkeypatch):
    import torch._dynamo

    from attnbench.methods import _flex
    from attnbench.runner import run_case

    # Dynamo's recompile limit is Dynamo's whatever the backend: the eager backend spares the test
    # inductor's compilation (half a minute in a fresh clone), and its kernels are not kept.
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: real_compile(fn, dynamic=False, backend="eager"))
    _flex.compiled_flex.cache_clear()
    torch._dynamo.reset()
    try:
        _flex.compiled_flex("default")  # sets Dynamo's limits for FlexAttention
        with torch._dynamo.config.patch(recompile_limit=1):  # stands for the limit a long run reaches
            rows = [run_case(Case("flex", batch=1, heads=1, seq_len=n, head_dim=16, dtype="float32", threads=1),
                             MeasureOptions(metrics=())) for n in (16, 32, 48)]
    finally:
        _flex.compiled_flex.cache_clear()
        torch._dynamo.reset()
    assert [r["status"] for r in rows] == ["ok", "error", "error"], [r["status_detail"] for r in rows]
    assert "recompile" in rows[1]["status_detail"].lower()
    assert rows[0]["kernel_compile_mode"] == "default"


@pytest.mark.parametrize("scope", ["attention", "layer"])
def test_backward_cases_time_the_backward_pass_alone(scope, monkeypatch):
    from torch.utils._python_dispatch import TorchDispatchMode

    from attnbench.case import make_cases
    from attnbench.measure import timing
    from attnbench.runner import run_case

    class OpNames(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    timed = []
    real_time_call = timing.time_call
    monkeypatch.setattr(timing, "time_call", lambda fn, *a, **kw: timed.append(fn) or real_time_call(fn, *a, **kw))
    options = MeasureOptions(metrics=("time",), min_time_s=0.02, max_time_s=0.2)
    (case,) = make_cases(["full-explicit"], [256], heads=2, head_dim=16, mode="backward", scope=scope, threads=1)
    row = run_case(case, options)
    assert row["status"] == "ok", row["status_detail"]
    assert row["time_backward_ms_median"] > 0 and row["time_backward_ms_iqr"] >= 0
    # Which ops each timed call runs, not how long it takes (the two differ by less than the noise
    # at this size): the step runs the softmax forward and backward, the backward alone only the latter.
    step, backward_alone = OpNames(), OpNames()
    with step:
        timed[0]()
    with backward_alone:
        timed[-1]()
    assert {"_softmax", "_softmax_backward_data"} <= step.names
    assert "_softmax_backward_data" in backward_alone.names and "_softmax" not in backward_alone.names
    forward = run_case(make_cases(["full-explicit"], [256], heads=2, head_dim=16, scope=scope, threads=1)[0], options)
    assert forward["time_backward_ms_median"] is None


def test_the_backward_alone_reaches_every_input_from_one_kept_forward():
    from attnbench.calls import make_backward

    calls = []

    def fn(q, k, v):
        calls.append(1)
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
    q, k, v = (torch.randn(1, 1, 32, 8) for _ in range(3))
    backward = make_backward(fn, q, k, v)
    first, second = backward(), backward()
    assert len(calls) == 1  # the forward ran once; its graph is kept
    assert all(torch.equal(a, b) for a, b in zip(first, second)) and len(first) == 3


def test_bandwidth_is_a_fraction_of_the_datasheet_peak(monkeypatch):
    from attnbench import peaks
    from attnbench.metrics.time import time_columns

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev: type("P", (), {"name": "NVIDIA H200"})())
    assert peaks.machine_bandwidth("cuda") == pytest.approx(4.8e12)  # the H200 datasheet's 4.8 TB/s
    assert peaks.machine_bandwidth("cpu") is None
    columns = time_columns([[2.0, 2.0, 2.0]], 1, {"bytes_moved_analytic": 4.8e9, "peak_bandwidth_bytes_per_s": 4.8e12,
                                                  "flops_analytic": 2e12, "machine_peak_flops_per_s": 1e15})
    assert columns["achieved_bandwidth_bytes_per_s"] == pytest.approx(2.4e12)
    assert columns["bandwidth_peak_fraction"] == pytest.approx(0.5)
    assert columns["achieved_flops_per_s"] == pytest.approx(1e15) and columns["machine_peak_fraction"] == 1.0


def test_cuda_cases_default_to_bfloat16_and_amp_keeps_float32_weights():
    from attnbench.case import make_cases
    from attnbench.errors import AttnbenchError

    def dtype(**setup):
        return make_cases(["full"], [64], devices_here=False, **setup)[0].dtype
    assert dtype() == "float32" and dtype(device="cuda") == "bfloat16" and dtype(device="cuda:1") == "bfloat16"
    assert dtype(device="cuda", dtype="float32") == "float32"
    assert dtype(device="cuda", scope="layer", amp="bf16") == "float32"  # the master weights
    with pytest.raises(AttnbenchError, match="float32 master weights"):
        make_cases(["full"], [64], scope="layer", amp="fp16", dtype="float16")
    with pytest.raises(AttnbenchError, match="--scope layer"):
        make_cases(["full"], [64], amp="bf16")
    with pytest.raises(AttnbenchError, match="--amp must be"):
        make_cases(["full"], [64], scope="layer", amp="fp8")


@pytest.mark.parametrize("amp", ["bfloat16", "float16"])
def test_amp_autocasts_the_network_over_float32_weights_and_is_recorded(amp, monkeypatch):
    from attnbench.case import make_cases
    from attnbench.runner import run_case

    seen = []
    real = torch.nn.functional.linear

    def linear(x, w, b=None):
        seen.append((w.dtype, torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu")))
        return real(x, w, b)
    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    scaled = []
    real_scale = torch.amp.GradScaler.scale
    monkeypatch.setattr(torch.amp.GradScaler, "scale", lambda self, loss: (scaled.append(1), real_scale(self, loss))[1])
    (case,) = make_cases(["full"], [64], heads=2, head_dim=8, scope="layer", mode="train", amp=amp, threads=1)
    row = run_case(case, MeasureOptions(metrics=("flops",)))
    assert row["status"] == "ok", row["status_detail"]
    assert row["amp"] == amp and row["dtype"] == "float32"
    assert seen and all(w == torch.float32 for w, _ in seen)  # the weights stay float32 ...
    assert all(autocast == getattr(torch, amp) for _, autocast in seen)  # ... every matmul under autocast
    assert bool(scaled) == (amp == "float16")  # a GradScaler only for float16
