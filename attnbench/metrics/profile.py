"""Profile: where a call's time, FLOPs and allocations go, stage by stage (attnbench profile).

After the warm-up, a few calls run under torch.profiler with the method's stages recorded
(attnbench.measure.profile); the one of median wall time is kept. The case's row holds that call
as a whole; each stage
(and `other`, what ran outside every stage) becomes a row of its own under the case's identity
with its `stage` named (attnbench.results.schema.stage_rows). A stage's FLOPs are those the
flops pass counted inside it (`flops_by_stage`): they sum to `flops` exactly. Not deterministic
(it times), so it refuses --jobs like time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from attnbench.errors import AttnbenchError
from attnbench.metrics import Metric
from attnbench.metrics.display import Column, fmt_number
from attnbench.metrics.policies import Tolerance
from attnbench.plan.options import Option
from attnbench.plan.values import Text, Whole

CALLS = 5  # profiled calls per case unless --profile-calls says otherwise (the median one is kept)
STAGE_COLUMNS = ("profile_ms", "profile_share", "profile_flops", "profile_flops_per_s", "profile_alloc_bytes",
                 "profile_top_ops", "profile_time")


def trace_path(folder: str | Path, case) -> Path:
    """The case's trace in `folder`: method, length and mode, and a digest of the whole case."""
    digest = hashlib.sha1(repr(sorted((k, str(v)) for k, v in vars(case).items())).encode()).hexdigest()[:8]
    return Path(folder) / f"{case.method.replace(':', '.')}-n{case.seq_len}-{case.mode}-{digest}.json"


def check(cases: list, options) -> None:
    """--trace: a folder (made if missing) that holds no trace of these cases yet."""
    folder = options.setting("trace")
    if not folder:
        return
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise AttnbenchError(f"--trace {folder} is a file: give a folder for the traces (one JSON file per case)")
    there = [trace for trace in (trace_path(folder, case) for case in cases) if trace.exists()]
    if there:
        raise AttnbenchError(f"--trace {folder} already holds {len(there)} trace(s) of these cases ({there[0].name}"
                             f"{', ...' if len(there) > 1 else ''}); give another folder or move them away")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttnbenchError(f"--trace {folder}: cannot make the folder ({exc.strerror}); give one you can "
                             "write to") from None


def stage_flops(row: dict) -> dict[str, int] | None:
    """The flops pass's count per stage ('landmarks=123; other=4'), or None where it counted none."""
    text = row.get("flops_by_stage")
    if not text:
        return None
    pairs = (item.rpartition("=") for item in str(text).split("; "))
    return {name: int(count) for name, _, count in pairs}


def _stage(name: str, seconds: float, wall: float, flops: int | None, allocated: float, top: str,
           clock: str) -> dict:
    return {"stage": name, "profile_ms": seconds * 1e3, "profile_share": seconds / wall if wall else None,
            "profile_flops": flops, "profile_flops_per_s": flops / seconds if flops and seconds > 0 else None,
            "profile_alloc_bytes": allocated, "profile_top_ops": top, "profile_time": clock}


def measure(ctx) -> dict:
    from attnbench.measure.profile import StageProfile, profile_call
    from attnbench.measure.stages import OTHER

    calls = ctx.options.setting("profile_calls", CALLS)
    folder = ctx.options.setting("trace")
    trace = trace_path(folder, ctx.case) if folder else None
    ctx.fresh_state()
    profile = profile_call(ctx.call, ctx.device, calls, trace)
    flops = stage_flops(ctx.row)
    clock = "cuda device time" if ctx.device.type == "cuda" else "cpu time"
    names = [s.name for s in profile.stages]
    missing = [name for name in flops or () if name not in names]  # counted, but not seen while profiled
    stages = [*profile.stages, *(StageProfile(name) for name in missing)]
    ctx.row.stages = [_stage(s.name, s.seconds, profile.seconds, None if flops is None else flops.get(s.name, 0),
                             s.allocated_bytes, s.top_ops(s.seconds), clock) for s in stages]
    whole = StageProfile("call", profile.seconds, sum(s.allocated_bytes for s in stages))
    for s in stages:
        for op, seconds in s.ops.items():
            whole.ops[op] = whole.ops.get(op, 0.0) + seconds
    other = next(s.seconds for s in stages if s.name == OTHER)
    row = _stage("", profile.seconds, profile.seconds, ctx.row.get("flops"), whole.allocated_bytes,
                 whole.top_ops(profile.seconds), clock)
    row.pop("stage")
    return {**row, "profile_covered": 1 - other / profile.seconds if profile.seconds else None,
            "profile_calls": calls, "profile_spread": (max(profile.walls) - min(profile.walls)) / profile.seconds,
            "profile_trace": str(trace) if trace else None}


def _covered(row: dict) -> str:
    value = row.get("profile_covered")
    return "-" if value is None else f"{fmt_number(100 * value, '.0f')}%"


PROFILE_CALLS = Option("profile_calls", "Profile: calls profiled per case, after the warm-up; the one of median "
                       "wall time is the row's.", Whole(phrase="a positive integer: calls profiled per case"), "metric",
                       commands=("run", "sweep", "profile"), default=str(CALLS))
TRACE = Option("trace", "Profile: write one Chrome/Perfetto trace (JSON) per case into this folder (made if "
               "missing; a trace already there is never overwritten).", Text("a folder for the traces"), "metric",
               commands=("run", "sweep", "profile"))

METRIC = Metric(
    name="profile", order=60, default=False, deterministic=False, measure=measure,
    columns=(*STAGE_COLUMNS, "profile_covered", "profile_calls", "profile_spread", "profile_trace"),
    help="time, FLOPs and allocations per stage of the method, from a few calls under torch.profiler (attnbench "
         "profile); a row per stage",
    types={"profile_flops": int, "profile_top_ops": str, "profile_time": str, "profile_calls": int,
           "profile_trace": str},
    column_help={
        "profile_ms": "the stage's own time in the profiled call of median wall time (nested stages left out), ms; "
                      "on the case's row that call's wall time",
        "profile_share": "profile_ms over the profiled call's wall time",
        "profile_flops": "FLOPs counted inside the stage (the flops pass's count: the stages sum to flops)",
        "profile_flops_per_s": "profile_flops / profile_ms: the stage's achieved FLOP rate",
        "profile_alloc_bytes": "bytes the stage's ops asked the allocator for per call (freed or not)",
        "profile_top_ops": "the stage's costliest aten ops with their input shapes (kernels on CUDA), by share of "
                           "its time",
        "profile_time": "what profile_ms counts: cpu time (self CPU time of the stage's ops and Python) or cuda "
                        "device time (its kernels)",
        "profile_covered": "the share of the profiled call inside the method's declared stages (1 - other's)",
        "profile_calls": "calls profiled",
        "profile_spread": "(slowest - fastest) / median wall time of the profiled calls",
        "profile_trace": "the case's Chrome/Perfetto trace (--trace)"},
    scopes=("attention", "layer", "model"),
    scope_error="the profile metric needs stages, which the attention, layer and model scopes mark; a swapped "
                "Hugging Face model's own layers have none: profile its attention with attnbench profile",
    compare=Tolerance("profile_ms", rel=0.25, absolute=0.05),
    options=(PROFILE_CALLS, TRACE), check=check,
    table=(Column("in stages", cell=_covered, needs="profile_covered", sort="profile_covered",
                  legend="in stages: the share of the profiled call inside the method's declared stages"),),
)
