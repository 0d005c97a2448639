"""A call profiled stage by stage: torch.profiler over a few calls, each op's time and allocations
given to the stage it ran in (attnbench.measure.stages), and what no stage holds kept apart.

Of the profiled calls the one of median wall time is kept (one call is what the time metric's
median is of). On the CPU a stage's time is the self CPU time of its ops and of its own range (the Python
between its ops); on CUDA it is the device time of the kernels its ops launched. `other` is the
rest of the profiled calls' wall time: on the CPU the ops and Python outside every stage, on CUDA
also the time the device waited for the host. A backward op belongs to the stage whose forward
made its autograd node (its `sequence_nr`). Bytes are what the stage's ops asked the allocator
for (freed or not) in that call.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, record_function

from attnbench.measure.memory import quiet_native_stderr
from attnbench.measure.stages import OTHER, Recorder, recording
from attnbench.measure.timing import synchronize

CALL = "attnbench: call"  # the range around each profiled call
BACKWARD_NODE = "autograd::engine::evaluate_function: "
TOP_OPS = 3


@dataclass
class StageProfile:
    """One stage's share of the kept profiled call."""

    name: str
    seconds: float = 0.0
    allocated_bytes: float = 0.0
    ops: dict[str, float] = field(default_factory=dict)  # op (with its input shapes) -> seconds

    def top_ops(self, total: float) -> str:
        """Its costliest ops (kernels on CUDA): 'aten::bmm [[8, 512, 64], [8, 64, 128]] 41%; ...'."""
        ranked = sorted(self.ops.items(), key=lambda item: -item[1])[:TOP_OPS]
        return "; ".join(f"{op} {100 * seconds / total:.0f}%" for op, seconds in ranked if total > 0)


@dataclass
class CallProfile:
    seconds: float  # the wall time of the profiled call of median wall time
    stages: list[StageProfile]  # that call's, in the order they ran, then OTHER
    walls: list[float] = field(default_factory=list)  # every profiled call's wall time, in order


class _Attribution:
    """Each profiler event's stage: its nearest enclosing stage range, or the stage whose forward
    made the autograd node it runs under, or OTHER inside a call; None outside the calls."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.stages, self.memo = recorder, set(recorder.seen), {}

    def __call__(self, event) -> str | None:
        chain, found = [], None
        while event is not None:
            if event.id in self.memo:
                found = self.memo[event.id]
                break
            chain.append(event)
            if event.name in self.stages:
                found = event.name
                break
            if event.name.startswith(BACKWARD_NODE):
                found = self.recorder.stage_of(event.sequence_nr)
                break
            if event.name == CALL:
                found = OTHER
                break
            event = event.cpu_parent
        for seen in chain:
            self.memo[seen.id] = found
        return found


def _op_name(event) -> str:
    shapes = [list(s) for s in (event.input_shapes or []) if s]
    return f"{event.name} {shapes}" if shapes else event.name


class _Calls:
    """Which profiled call a moment belongs to: the call range whose window holds it (on any
    thread: a CUDA backward runs on the autograd engine's own)."""

    def __init__(self, events: list) -> None:
        windows = sorted((e.time_range.start, e.time_range.end, e) for e in events if e.name == CALL)
        self.starts, self.ends = [w[0] for w in windows], [w[1] for w in windows]
        self.walls = [w[2].cpu_time_total / 1e6 for w in windows]

    def __call__(self, at: float) -> int | None:
        index = bisect.bisect_right(self.starts, at) - 1
        return index if index >= 0 and at <= self.ends[index] else None


def _allocations(profiler, events: list, stage_of, in_call, device: torch.device) -> dict[str, float]:
    """Bytes each stage asked for in the kept call: every allocation record of the device in it,
    given to the innermost event on its thread whose time range holds it."""
    results = profiler.profiler.kineto_results
    start = results.trace_start_ns()
    kind = "CUDA" if device.type == "cuda" else "CPU"
    spans = sorted(((e.time_range.start, e.time_range.end, e.thread, e) for e in events), key=lambda s: s[0])
    out: dict[str, float] = defaultdict(float)
    for record in results.events():
        if record.name() != "[memory]" or record.nbytes() <= 0 or kind not in str(record.device_type()):
            continue
        at, thread = (record.start_ns() - start) / 1e3, record.start_thread_id()
        if not in_call(at):
            continue
        inner = None
        for begin, end, where, event in spans:  # the last span starting before it that holds it is innermost
            if begin > at:
                break
            if end >= at and where == thread:
                inner = event
        stage = stage_of(inner) if inner is not None else None
        if stage is not None:
            out[stage] += record.nbytes()
    return out


def _add(stage: StageProfile, event, cuda: bool, own: set) -> None:
    seconds = (event.self_device_time_total if cuda else event.self_cpu_time_total) / 1e6
    stage.seconds += seconds
    if cuda:
        for kernel in event.kernels:
            stage.ops[kernel.name] = stage.ops.get(kernel.name, 0.0) + kernel.duration / 1e6
    elif event.name not in own and event.name != CALL and not event.name.startswith(BACKWARD_NODE):
        name = _op_name(event)
        stage.ops[name] = stage.ops.get(name, 0.0) + seconds


def _attribute(profiler, recorder: Recorder, device: torch.device) -> CallProfile:
    """The profiled call of median wall time, its stages' time, ops and allocations (a call the
    machine slowed for a moment does not move the figures, as a mean of calls would)."""
    cuda = device.type == "cuda"
    events = [e for e in profiler.events() if e.device_type == torch.autograd.DeviceType.CPU]
    stage_of, calls = _Attribution(recorder), _Calls(events)
    median = sorted(range(len(calls.walls)), key=calls.walls.__getitem__)[(len(calls.walls) - 1) // 2]
    names = [*recorder.seen, OTHER]
    stages, own = {name: StageProfile(name) for name in names}, set(names)

    def in_call(at: float) -> bool:
        return calls(at) == median

    for event in events:
        stage = stage_of(event)
        if stage is not None and in_call(event.time_range.start):
            _add(stages[stage], event, cuda, own)
    for stage, total in _allocations(profiler, events, stage_of, in_call, device).items():
        stages[stage].allocated_bytes = total
    wall = calls.walls[median]
    if cuda:  # the device's idle time and the host's own work are nobody's stage
        stages[OTHER].seconds = max(0.0, wall - sum(s.seconds for n, s in stages.items() if n != OTHER))
    return CallProfile(wall, list(stages.values()), calls.walls)


def profile_call(call: Callable[[], object], device: torch.device, calls: int = 5,
                 trace: str | Path | None = None) -> CallProfile:
    """Run `call` `calls` times under torch.profiler with stages recorded, and give each stage its
    time, allocations and top ops in the call of median wall time; `trace` also writes the
    Chrome/Perfetto trace of every call there."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    profiler = torch.profiler.profile(activities=activities, record_shapes=True, profile_memory=True)
    with recording() as recorder, quiet_native_stderr():
        profiler.start()
        try:
            for _ in range(calls):
                with record_function(CALL):
                    call()
                    synchronize(device)
        finally:
            profiler.stop()
    if trace is not None:
        profiler.export_chrome_trace(str(trace))
    return _attribute(profiler, recorder, device)
