"""The command line: parse, call the library, render. Heavy imports happen inside commands so
that `attnbench --help` answers without loading torch."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from typer.exceptions import TyperException

import attnbench
from attnbench.allocator import DEFAULT as DEFAULT_POLICY
from attnbench.case import Case, Limits, MeasureOptions
from attnbench.cli_history import ab_command, history_command, html_command
from attnbench.cli_model import capture_command, swap_command
from attnbench.cli_shared import ParamOpt, _flag, measure_and_show
from attnbench.errors import AttnbenchError, OutputClosed
from attnbench.metrics import parse_metrics
from attnbench.options import BY_KEY, OPTIONS, Choice, Flag, Grids, Option, parse_names, parse_param, parse_sizes

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


def _default(text: object) -> str:
    """' [default: X]' for help text (escaped: rich would eat the brackets)."""
    return f" \\[default: {text}]"


# ---- run and sweep: their options come from the option spec (attnbench.options.OPTIONS) ----

SWEEP_PROCESSES = 3  # sweep's default: reports meant for compare (run's is MeasureOptions' 1, a quick look)

def _default_text(option: Option) -> str | None:
    """The default the help shows: the spec's words, else the field's default where it lives."""
    if option.default is not None:
        return option.default
    name = option.field or option.key
    where = {"grid": Case, "setup": Case, "options": MeasureOptions, "limits": Limits}.get(option.target)
    fields = {f.name: f.default for f in dataclasses.fields(where)} if where else {}
    value = fields.get(name, dataclasses.MISSING)
    return None if value in (dataclasses.MISSING, None) or isinstance(option.value, Flag) else str(value)


def _metrics_help() -> str:
    from attnbench.metrics import all_metrics

    listed = "; ".join(f"{m.name}: {m.help}" for m in all_metrics())
    defaults = ",".join(m.name for m in all_metrics() if m.default)
    return f"Passes to run, comma separated: {listed}. [default: {defaults}]"


def option_help(option: Option) -> str:
    """An option's help as --help and docs/options.md show it, its default included."""
    if option.key == "metrics":
        return _metrics_help()
    default = _default_text(option)
    return option.help + (f" [default: {default}]" if default else "")


def _parameter(option: Option) -> inspect.Parameter:
    """The Typer parameter of an option: every value defaults to None (False for a flag), so that
    only what the user gave reaches the scenario."""
    value, help_text = option.value, escape(option_help(option))
    if isinstance(value, Flag):
        annotation, default = Annotated[bool, typer.Option(*option.names, metavar="", help=help_text)], False
    elif isinstance(value, Grids):
        annotation, default = Annotated[Optional[list[str]], typer.Option(*option.names, help=help_text)], None
    else:
        kind = value.cli_type
        if isinstance(value, Choice) and not value.grid:  # a closed choice: Typer refuses anything else
            kind = enum.Enum(option.key, {c: c for c in value.choices}, type=str)
        bound = {"min": getattr(value, "low", 1)} if kind is int else {"min": 0.0} if kind is float else {}
        info = typer.Option(*option.names, help=help_text, **bound)
        if option.key == "metrics":  # metrics registered from Python after this import show too
            _METRICS_HELP.append(info)
        annotation = Annotated[Optional[kind], info]
        default = None
    return inspect.Parameter(option.key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_METRICS_HELP: list = []  # the --metrics options' help, written again when the CLI starts


def _with_options(command: str, leading: list[inspect.Parameter] = ()):
    """Give a command the run/sweep options of the spec as its Typer parameters."""
    def decorate(fn):
        params = [*leading, *(_parameter(o) for o in OPTIONS if o.cli and command in o.commands)]
        fn.__signature__ = inspect.Signature(params)
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn
    return decorate


def _split(given: dict) -> tuple[dict, dict]:
    """(scenario keys, command behaviour) from the parsed parameters: values parsed by their grammar,
    each under its spec key; what was not given is left out."""
    scenario, control = {}, {}
    for key, value in given.items():
        option = BY_KEY[key]
        if value is None or value is False:
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        if option.sets and option.sets[0] not in {k for k, v in given.items() if v not in (None, False)}:
            scenario[option.sets[0]] = option.sets[1]
        if option.target == "command":
            control[key] = value
        else:
            scenario[key] = option.value.parse(value, option.flag)
    return scenario, control


def _execute(plan, command: str, control: dict) -> None:
    """Shared by run (in this process) and sweep (isolated workers, here or on Ray): check, measure
    through the engine, render. Whatever can be checked without torch is checked first, so bad
    input fails before the import and before the allocator restart."""
    from attnbench.case import expand_methods
    from attnbench.launchers import check_launch, make_launcher
    from attnbench.metrics import chosen
    from attnbench.registry import check_names
    from attnbench.report import check_target

    executor = control.get("executor", "local") if command == "sweep" else "in-process"
    jobs, dry_run, resume = control.get("jobs", 1), control.get("dry_run", False), control.get("resume", False)
    find_max_seq = control.get("find_max_seq", False)
    expand_methods(plan.methods)
    check_names([plan.options.reference])
    check_launch(executor, jobs, control.get("address"))
    plan.options.check_concurrency(jobs, find_max_seq)
    check_target(plan.output, control.get("append", False) or resume)
    again = [m for m in chosen(plan.options.metrics) if m.per_process]
    processes = plan.options.processes if again and not find_max_seq else 1
    if not dry_run:
        from attnbench import allocator as allocator_policy

        allocator_policy.apply(control.get("allocator", DEFAULT_POLICY))  # may restart this process once
        if executor == "local" or processes > 1:
            from attnbench.workers import start_template

            start_template(plan.options.metrics)  # the workers' template imports torch while this process does too
    # A Ray task checks its device on its node; a dry run lists a GPU grid anywhere.
    cases = plan.cases(devices_here=executor != "ray" and not dry_run)
    if dry_run:
        from attnbench.schema import Labeller, identity

        label = Labeller([identity(c) for c in cases])
        for i, case in enumerate(cases, 1):
            shape = "".join([f" kv_heads={case.kv_heads}" if case.kv_heads else "",
                             f" q_seq={case.q_seq_len}" if case.q_seq_len else "", " causal" if case.causal else ""])
            typer.echo(f"{i:4d}  {label(identity(case))}  batch={case.batch} heads={case.heads} "
                       f"head_dim={case.head_dim}{shape} {case.dtype} {case.mode} seed={case.seed}")
        names = ", ".join(m.name for m in again)
        where = (f"{names} in {processes} processes each" if again and processes > 1 else
                 f"{names} in one process each" if again else "nothing measured per process")
        limits = plan.limits
        typer.echo(f"{len(cases)} case(s), {where}; limits: {limits.max_memory_bytes / 2**30:g} GiB, "
                   f"{limits.timeout_s:g} s per case")
        return
    # made after the grid is checked: a Ray launcher starts a cluster, which bad input should not
    launcher = make_launcher(executor, limits=plan.limits, jobs=jobs, address=control.get("address"),
                             processes=plan.options.processes)
    measure_and_show(cases, plan.options, launcher, plan.output, plan.name, control, processes)


@app.command("run")
@_with_options("run")
def run_command(**given) -> None:
    """Measure METHODs over sequence lengths in this process: one CSV row per case and a table.

    Each case is measured in separate passes (FLOPs, peak memory, time), so they do not disturb
    each other. A failing case (out of memory, NaN, unsupported) becomes a row with its status.
    `attnbench sweep` runs the same cases, each isolated in a worker with limits.
    Without --method and --seq: full at n=1024.

    Example: [bold]attnbench run -m full,full-explicit -n 1k..4k --mode backward -o base.csv[/bold]
    """
    from attnbench.scenario import scenario_from_dict

    scenario, control = _split(given)
    captured = any(str(v).startswith("capture:") for v in scenario.get("inputs", []))
    defaults = {"methods": ["full"], **({} if captured else {"seq": [Case.seq_len]})}  # a capture has its length
    plan = scenario_from_dict({"name": "run", **defaults, **scenario})
    _execute(plan, "run", control)


SCENARIO_ARGUMENT = inspect.Parameter(
    "scenario", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
    annotation=Annotated[Optional[str], typer.Argument(
        help="Scenario file (TOML), or the name of a bundled one (see 'attnbench scenarios'). Omit it to give the "
        "grid as options.")])


@app.command("sweep")
@_with_options("sweep", [SCENARIO_ARGUMENT])
def sweep_command(scenario: Optional[str] = None, **given) -> None:
    """Run a grid of cases, each in a worker process with a memory cap and a time limit.

    Out of memory, timeouts, crashed workers, NaN outputs and errors become rows with their
    status, and the sweep goes on. Every row is written the moment its case ends, so an
    interrupted sweep keeps every finished case; --resume completes it. Options given here
    override the scenario file's.

    With --jobs N, N cases run at once (no timing); with --executor ray, each case is a task on a
    Ray cluster, isolated the same way.

    Example: [bold]attnbench sweep scenarios/smartbird_fig3.toml --max-memory 4GB[/bold]
    """
    from attnbench.scenario import load_scenario, scenario_from_dict

    overrides, control = _split(given)
    if scenario is None and not overrides.get("methods"):
        raise AttnbenchError("give a scenario file (see scenarios/) or the grid itself with --method and --seq")
    defaults = {"processes": SWEEP_PROCESSES}
    plan = (load_scenario(scenario, overrides, defaults) if scenario
            else scenario_from_dict({"name": "sweep", **defaults, **overrides}))
    _execute(plan, "sweep", control)


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
    causal: Annotated[bool, typer.Option("--causal", help="The method's causal form (and causal full attention "
                                                          "beside it).")] = False,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="PNG path." + _default("reports/pattern-<method>-<n>[-causal].png"))] = None,
) -> None:
    """Draw which query-key pairs a method computes, head by head, next to full attention.

    Fixed patterns (BigBird, Longformer, Sparse Transformer), one draw of sampled ones (SBM's
    graph, Smart Bird's top-k), or for low-rank methods the effective attention matrix; with
    --causal, the method's causal form.

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
    path = output or Path("reports") / f"pattern-{method.replace(':', '-')}-{n}{'-causal' if causal else ''}.png"
    if not path.suffix:  # a bare name gets .png; any other path is written exactly as given
        path = path.with_suffix(".png")
    pattern_figure(method, n, params, heads=heads, head_dim=head_dim, seed=seed, path=path, causal=causal)
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
    from attnbench.report import load

    if paper and not relative_to:
        raise AttnbenchError("--paper puts a paper's ratios beside ours: give --relative-to too (its baseline: "
                             "full-explicit, the materialized attention the papers measured)")
    if paper:
        from attnbench.papers import paper_table

        paper_table(paper)  # an unknown name fails before the report is read
    rows = load(report).rows
    if relative_to:
        from attnbench.papers import relative_lines

        lines = relative_lines(rows, relative_to, paper)
    else:
        from attnbench.analysis import summary_lines

        lines = summary_lines(rows, reference) or ["no ok rows with times to summarise"]
    for line in lines:
        typer.echo(line)


def _compare_help() -> str:
    from attnbench.metrics import all_metrics

    judged = [m for m in all_metrics() if m.compare is not None]
    policies = ", ".join(f"{m.name} ({type(m.compare).__name__.lower()})" for m in judged)
    return (f"Metrics to judge, comma separated: {policies}. In CI across machines, use the deterministic ones "
            "(exact)." + _default(",".join(m.name for m in judged)))


class CompareFormat(str, enum.Enum):
    text = "text"
    markdown = "markdown"


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
        "--allow-disjoint", help="List the rows of two reports that share no case (still exit 2: nothing was "
        "judged).")] = False,
    format: Annotated[CompareFormat, typer.Option("--format", help="text or markdown (for a pull-request comment).")]
    = CompareFormat.text,
) -> None:
    """Judge NEW against BASE row by row; exit 1 on any confirmed regression.

    Each metric judges itself: FLOPs and sparsity must match exactly (same seed), peak memory
    and error within tolerances, time by a bootstrap interval of the ratio of medians from the
    raw samples kept beside each report. Prints the rows that changed.

    Example: [bold]attnbench compare reports/baselines/ci.csv new.csv --metrics flops,sparsity[/bold]
    """
    from attnbench.compare import compare_reports
    from attnbench.render import comparison_lines

    chosen = parse_metrics(parse_names(metrics), comparable=True) if metrics else None
    result = compare_reports(base, new, chosen, tolerances=_thresholds(tolerance, "--tolerance"),
                             floors=_thresholds(floor, "--floor"), allow_disjoint=allow_disjoint)
    for note in result.notes:
        print(note, file=sys.stderr)
    if result.hardware_differs:
        print(f"Warning: the reports differ in {', '.join(result.hardware_differs)}; "
              "time and memory may not be comparable", file=sys.stderr)
    for line in comparison_lines(result, result.metrics, markdown=format is CompareFormat.markdown):
        typer.echo(line)
    if result.compared_nothing:
        print(f"Error: no case had a metric or status judged on both sides ({', '.join(result.metrics)}); "
              "a gate that compared nothing does not pass", file=sys.stderr)
        raise typer.Exit(2)
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
        grouped = {"native": "native", "repeat": "k, v repeated", "no": "no"}[caps.grouped_kv]
        flags += (f"\ncausal: {'yes' if caps.causal else 'no'}\nGQA (--kv-heads): {grouped}\n"
                  f"decode (--q-seq): {'yes' if caps.short_query else 'no'}")
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
    from attnbench.report import load

    formats = tuple(parse_names(format))
    if not formats or set(formats) - set(FORMATS):
        raise AttnbenchError(f"--format takes formats from {','.join(FORMATS)}, not {format!r}")
    frame = load(report).frame
    for path in plot_report(frame, out_dir or report.parent, report.stem, formats):
        typer.echo(f"wrote {path}")


app.command("capture")(capture_command)
app.command("swap")(swap_command)
app.command("history")(history_command)
app.command("html")(html_command)
app.command("ab", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(ab_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every user error is one line on stderr and a non-zero exit.
    `argv` (default: the command line) lets tests and scripts call the CLI in-process."""
    try:
        for info in _METRICS_HELP:
            info.help = escape(_metrics_help())
        code = app(args=argv, prog_name="attnbench", standalone_mode=False)
    except TyperException as exc:  # usage errors: bad option value, unknown option or command
        if exc.format_message():  # empty when help was shown for a bare `attnbench`
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "attnbench"
            print(f"Error: {exc.format_message()} (see '{command} --help')", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OutputClosed as exc:
        sys.stdout = open(os.devnull, "w")  # nothing left to flush into the closed pipe at exit
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
