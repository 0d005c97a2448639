"""The CUDA paths, checked without a GPU: each test stands in for what a GPU would show (a device
index torch requires, a generator on the wrong device, a tensor made on the CPU) and fails on
code that would break on the first GPU run. tests/execute/test_gpu.py runs them for real on a GPU."""

import statistics
import sys

import pytest
import torch

from attnbench.plan.case import Case, Limits, MeasureOptions
from tests.conftest import cli

QUICK = MeasureOptions(metrics=("flops",), min_time_s=0.0, max_time_s=0.0)


def test_the_device_memory_cap_names_the_device_by_index(monkeypatch):
    from attnbench.execute import workers

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


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="stands in for a worker whose set-up raises: needs no CUDA")
def test_a_worker_whose_set_up_raises_says_why_in_the_row():
    from attnbench.execute.workers import WorkerLauncher

    # Capping device memory on a torch without CUDA raises in the worker, outside the case.
    case = Case("full", batch=1, heads=1, seq_len=32, head_dim=8, device="cuda", threads=1)
    row = WorkerLauncher(Limits(max_memory_bytes=2**28)).run(case, QUICK)
    assert row["status"] == "crashed"
    # torch's own reason: a CPU build is "not compiled with CUDA", a CUDA build finds "no NVIDIA driver"
    detail = row["status_detail"]
    assert detail.startswith("the worker raised: ") and ("CUDA" in detail or "NVIDIA" in detail), detail


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
VARIANTS = [(name, {}) for name in __import__("attnbench.methods.registry", fromlist=["x"]).list_methods()] + [
    ("nystromformer", {"conv": 3}), ("sbm", {"variant": "bernoulli"}), ("sbm", {"multi_edges": True})]


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=[f"{n}{p or ''}" for n, p in VARIANTS])
def test_no_method_hands_a_cpu_generator_to_an_op_on_its_device(name, params, monkeypatch):
    from attnbench.methods.contract import Shape, Unsupported
    from attnbench.methods.registry import create_method

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
    from attnbench.execute.runner import run_case
    from attnbench.measure import error as instruments

    def broken(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")
    monkeypatch.setattr(instruments, "attention_error", broken)
    case = Case("full", batch=1, heads=1, seq_len=64, head_dim=8, threads=1)
    row = run_case(case, MeasureOptions(metrics=("error",)))
    assert row["status"] == "error" and "same device" in row["status_detail"]
    # A kernel that takes no V of another width leaves the column empty, and says nothing else went wrong.
    pytest.importorskip("linformer", reason="the peers are not installed (pip install attnbench[peers])")
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
    timing._grow_gemm(torch.device("cpu"), torch.float32, 1)
    assert sizes[-1] > 256, "a launch-bound 256^3 GEMM is no peak"


def _gpu_check_plan(out) -> list[tuple[str, int, int, list[str]]]:
    """(name, cases, estimate s, command) of each step of `gpu_check.sh --dry-run OUT`, and the total line."""
    import shlex
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(["bash", "scenarios/gpu_check.sh", "--dry-run", str(out)], cwd=root, capture_output=True,
                          text=True, check=True)
    steps = []
    for line in done.stdout.splitlines()[:-1]:
        head, command = line.split(": ", 1)[0], line.split(" s: ", 1)[1]
        counts = line.split(": ", 2)[1]
        cases, estimate = int(counts.split(" cases")[0]), int(counts.split("about ")[1].split(" s")[0])
        steps.append((head.split()[2], cases, estimate, shlex.split(command)))
    return steps, done.stdout.splitlines()[-1]


def test_the_gpu_check_is_sized_for_seven_minutes_and_its_counts_are_the_grids(tmp_path):
    from attnbench.methods import BUILTIN
    from attnbench.plan.case import expand_methods

    steps, total = _gpu_check_plan(tmp_path / "out")
    estimate = sum(s[2] for s in steps)
    assert estimate <= 420 and f"about {estimate} s in all" in total
    assert [s[0] for s in steps[:3]] == ["headline", "memory-8k", "oom"]  # the headline figures first
    # the every-method step counts the built-in methods; '*' also takes what else is registered here
    # (installed peers, plugins)
    others = len(expand_methods(["*"])) - len(BUILTIN)
    for name, cases, _, command in steps:
        if command[2:4] != ["attnbench", "sweep"]:
            continue
        assert "-o" in command and str(tmp_path / "out") in command[command.index("-o") + 1]
        listed = cli(*command[3:], "--dry-run")  # the grid, listed without a GPU
        assert listed.returncode == 0, listed.stderr
        found = int(listed.stdout.strip().splitlines()[-1].split(" case")[0])
        assert found == cases + (others if name == "every-method" else 0), (name, listed.stdout[-300:])


@pytest.mark.slow  # the project installed offline and the CUDA tests collected: about 20 s
def test_the_gpu_check_stops_before_measuring_without_a_gpu_and_leaves_no_report_behind(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "headline.csv").write_text("kept\n")
    refused = subprocess.run(["bash", "scenarios/gpu_check.sh", str(existing)], cwd=root, capture_output=True,
                             text=True)
    assert refused.returncode == 2 and (existing / "headline.csv").read_text() == "kept\n"
    # The set-up (the project installed offline into a scratch folder) runs, then the first CUDA step stops it.
    import setuptools

    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip("this environment's setuptools cannot build a wheel alone; gpu_offline_check.sh tries the "
                    "carried one")
    wheels = tmp_path / "no-wheels"  # the suite's Python needs none: what it lacks is the GPU
    wheels.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "PIP_NO_INDEX": "1", "GPU_WHEELS": str(wheels)}
    done = subprocess.run(["bash", "scenarios/gpu_check.sh", str(tmp_path / "out")], cwd=root, capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "gpu_check: this check needs a CUDA GPU: nothing was measured"
    assert "Traceback" not in done.stdout and (tmp_path / "out" / "log").is_file()


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
    from attnbench.execute.runner import run_case
    from attnbench.methods import sdpa

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
        # a dry run lists a GPU grid on any machine (how the GPU check is planned); a run needs the GPU here
        assert cli("sweep", "-m", "full", "-n", "64", "--device", "cuda", "--dry-run").returncode == 0
        local = cli("run", "-m", "full", "-n", "64", "--device", "cuda")
        assert local.returncode != 0 and "no CUDA device is visible here" in local.stderr


def test_a_ray_task_checks_its_device_on_its_node_and_runs_on_its_gpu(monkeypatch):
    from attnbench.execute import ray_launcher, workers
    from attnbench.plan import case as cases

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


def test_flex_past_the_recompile_limit_is_an_error_row_never_the_eager_kernel(eager_compile):
    import torch._dynamo

    from attnbench.execute.runner import run_case
    from attnbench.methods import _flex

    # Dynamo's recompile limit is Dynamo's whatever the backend (eager_compile: no inductor).
    _flex.compiled_flex("default")  # sets Dynamo's limits for FlexAttention
    limit = _flex.RECOMPILE_SETTINGS[0] if hasattr(torch._dynamo.config, "recompile_limit") else _flex.CACHE_SETTINGS[0]
    with torch._dynamo.config.patch(**{limit: 1}):  # stands for the limit a long run reaches
        rows = [run_case(Case("flex", batch=1, heads=1, seq_len=n, head_dim=16, dtype="float32", threads=1),
                         MeasureOptions(metrics=())) for n in (16, 32, 48)]
    assert [r["status"] for r in rows] == ["ok", "error", "error"], [r["status_detail"] for r in rows]
    assert "recompile" in rows[1]["status_detail"].lower()
    assert rows[0]["kernel_compile_mode"] == "default"


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["attention", "layer"])
def test_backward_cases_time_the_backward_pass_alone(scope, monkeypatch):
    from torch.utils._python_dispatch import TorchDispatchMode

    from attnbench.execute.runner import run_case
    from attnbench.measure import timing
    from attnbench.plan.case import make_cases

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
    from attnbench.execute.calls import make_backward

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
    from attnbench.measure.machine import peaks
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
    from attnbench.errors import AttnbenchError
    from attnbench.plan.case import make_cases

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
    from attnbench.execute.runner import run_case
    from attnbench.plan.case import make_cases

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


class _GpuClock:
    """Stands in for a GPU: a call adds its kernel time to the clock, an event reads it."""

    def __init__(self, kernel_s: float) -> None:
        self.now, self.kernel_s, self.calls = 0.0, kernel_s, 0

    def call(self) -> None:
        self.now += self.kernel_s
        self.calls += 1

    def event(self, enable_timing=True):
        clock = self

        class Event:
            def record(self):
                self.at = clock.now

            def elapsed_time(self, end):
                return (end.at - self.at) * 1e3
        return Event()


@pytest.mark.parametrize("kernel_us, short_calls, capturable, method", [
    (5, "batch", True, "graph-batch"), (5, "batch", False, "events-batch"), (5, "each", True, "events"),
    (500, "batch", True, "events")])
def test_a_microsecond_call_is_timed_as_a_batch_of_calls(kernel_us, short_calls, capturable, method, monkeypatch):
    import contextlib

    from attnbench.measure import timing
    from attnbench.methods.contract import Unsupported

    gpu = _GpuClock(kernel_us * 1e-6)
    captures = []

    def captured(fn, device):
        if not capturable:
            raise Unsupported("cannot be captured in a CUDA graph: a sync")
        captures.append(fn)
        return fn
    monkeypatch.setattr(timing, "captured", captured)
    monkeypatch.setattr(timing, "l2_flusher", lambda device: lambda: None)
    monkeypatch.setattr(torch.cuda, "Event", gpu.event)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    result = timing.time_cuda(gpu.call, torch.device("cuda"), min_time_s=0.0, max_time_s=0.01, warmup_s=0.0,
                              short_calls=short_calls)
    assert result.method == method
    batch = result.calls_per_sample
    assert batch == (200 if method.endswith("batch") else 1)  # a batch of about 1 ms: 200 calls of 5 us
    assert bool(captures) == (method == "graph-batch")
    assert statistics.median(result.samples_s) == pytest.approx(kernel_us * 1e-6)  # per call, not per batch


def test_the_time_metric_records_how_the_time_was_taken(monkeypatch):
    from attnbench.execute.runner import run_case
    from attnbench.measure import timing

    cpu = run_case(Case("full", batch=1, heads=1, seq_len=64, head_dim=8, threads=1),
                   MeasureOptions(metrics=("time",), min_time_s=0.01, max_time_s=0.05))
    assert cpu["time_method"] == "timer" and cpu["time_calls_per_sample"] >= 1
    monkeypatch.setattr(timing, "time_call", lambda *a, **k: timing.Timing((2e-6,) * 5, 200, "graph-batch"))
    row = run_case(Case("full", batch=1, heads=1, seq_len=64, head_dim=8, threads=1),
                   MeasureOptions(metrics=("time",), min_time_s=0.01, max_time_s=0.05))
    assert row["time_method"] == "graph-batch" and row["time_calls_per_sample"] == 200
    assert row["time_ms_median"] == pytest.approx(2e-3)


def test_sdpa_flash_runs_its_own_bottom_right_causal_kernel_for_a_short_query_block(monkeypatch):
    from attnbench.methods import sdpa
    from attnbench.methods.contract import Shape, Unsupported
    from attnbench.methods.full import explicit_softmax_attention, future_keys

    shape = Shape(1, 4, 64, 16, kv_heads=2, q_seq_len=3, causal=True)
    ran = []

    def flash(q, k, v):  # stands in for FlashAttention's kernel: bottom-right causal, grouped natively
        ran.append(q.shape)
        return explicit_softmax_attention(q, k, v, future_keys(shape, q.device))
    monkeypatch.setattr(sdpa, "flash_lower_right", flash)
    monkeypatch.setattr(sdpa, "flash_refusal", lambda q, k, v, grouped: "")
    fn = sdpa.pinned("FLASH_ATTENTION", shape, "cuda")
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 3, 16, generator=g)
    k, v = (torch.randn(1, 2, 64, 16, generator=g) for _ in range(2))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=~future_keys(shape, "cpu"),
                                                                enable_gqa=True)
    assert torch.allclose(fn(q, k, v), expected, atol=1e-6) and ran == [q.shape]
    # on the CPU, or for a full-length block, SDPA's own path stays
    assert sdpa.pinned("FLASH_ATTENTION", shape, "cpu") is not fn and not ran[1:]
    # where torch's checks refuse flash, the case is unsupported with their reason: never another kernel
    monkeypatch.setattr(sdpa, "flash_refusal", lambda q, k, v, grouped: "Flash attention requires head_dim <= 256")
    refused = sdpa.pinned("FLASH_ATTENTION", sdpa.probe_shape(shape), "cuda")
    with pytest.raises(Unsupported, match="head_dim <= 256"):
        sdpa.check_runs(refused, "sdpa-flash", "FLASH_ATTENTION", shape, "cpu", torch.float32)
