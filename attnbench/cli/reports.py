"""Commands that read reports or the registry: summary, compare, plot, show-pattern, list, info."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from attnbench.cli.shared import ParamOpt, _flag
from attnbench.cli.spec import _default
from attnbench.errors import AttnbenchError
from attnbench.metrics import parse_metrics
from attnbench.plan.values import parse_names, parse_param, parse_sizes


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
    from attnbench.views.plot import pattern_figure

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
    reference, how many times faster or slower each ran at the largest common n, and each
    method's error and conditioning where the report has them; or, with --relative-to, the
    ratio tables of the papers.

    Example: [bold]attnbench summary reports/sbm-table3.csv --relative-to full-explicit --paper sbm-table3[/bold]
    """
    from attnbench.results.report import load

    if paper and not relative_to:
        raise AttnbenchError("--paper puts a paper's ratios beside ours: give --relative-to too (its baseline: "
                             "full-explicit, the materialized attention the papers measured)")
    if paper:
        from attnbench.judge.papers import paper_table

        paper_table(paper)  # an unknown name fails before the report is read
    rows = load(report).rows
    if relative_to:
        from attnbench.judge.papers import relative_lines

        lines = relative_lines(rows, relative_to, paper)
    else:
        from attnbench.judge.learning import training_lines
        from attnbench.judge.summary import quality_lines, summary_lines

        lines = summary_lines(rows, reference) + quality_lines(rows) + training_lines(rows) or [
            "no ok rows with a time, an error, a conditioning figure or a trained model to summarise"]
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
    from attnbench.judge.compare import compare_reports
    from attnbench.views.render import comparison_lines

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


def list_command(pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'full*'.")] = "*") -> None:
    """List registered methods with their parameters, defaults, capabilities, the stages
    'attnbench profile' breaks them into, and paper; peers whose package is missing are listed with
    what to install."""
    import fnmatch

    from rich.table import Table

    from attnbench.methods.registry import get_method, list_methods, missing_peers
    from attnbench.views.render import console

    table = Table(title="attnbench methods", title_justify="left")
    for column in ("method", "parameters (type, default)", "capabilities", "paper"):
        table.add_column(column, overflow="fold")  # a word longer than the column folds, never cut with '...'

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
        shipped = [flag for flag, on in (("--window/--sinks", caps.window), ("--documents", caps.documents),
                                         ("--softcap", caps.softcap), ("--cache state", caps.recurrent)) if on]
        flags += f"\nmasks and state: {', '.join(shipped) or '-'}"
        flags += f"\nstages (attnbench profile): {', '.join(cls.stages) or '-'}"
        # choices as 'a | b | c': a line may break between them
        params = "\n".join(f"{p.describe().replace('|', ' | ')}: {p.help}" for p in cls.params()) or "-"
        table.add_row(name, params, flags, cls.paper)
    for name, why in missing_peers().items():
        if fnmatch.fnmatch(name, pattern):
            table.add_row(name, "-", escape(f"not installed: {why}"), "-")
    console().print(table)


def info_command(device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu") -> None:
    """Print the environment recorded on every row (versions, CPU/GPU, allocator settings)."""
    from rich.table import Table

    from attnbench.measure.machine.env import environment
    from attnbench.plan.case import check_device
    from attnbench.views.render import console

    table = Table(show_header=False, title="attnbench environment", title_justify="left")
    for key, value in environment(check_device(device)).items():
        table.add_row(key, str(value))
    console().print(table)


def plot_command(
    report: Annotated[Path, typer.Argument(help="CSV report written by 'attnbench run'.")],
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", "--output", "-o", help="Folder for the figures." + _default("the report's folder"))] = None,
    format: Annotated[str, typer.Option(
        "--format", help="File formats, comma separated: png, svg, pdf." + _default("png,svg"))] = "png,svg",
) -> None:
    """Plot time, peak memory and FLOPs against sequence length (log-log), and error and
    conditioning (per model layer for captured inputs) where the report has them; PNG and SVG.

    Example: [bold]attnbench plot reports/run-20260101-120000.csv --out-dir reports/[/bold]
    """
    from attnbench.results.report import load
    from attnbench.views.plot import FORMATS, plot_report

    formats = tuple(parse_names(format))
    if not formats or set(formats) - set(FORMATS):
        raise AttnbenchError(f"--format takes formats from {','.join(FORMATS)}, not {format!r}")
    frame = load(report).frame
    paths = plot_report(frame, out_dir or report.parent, report.stem, formats)
    if not paths:
        raise AttnbenchError(f"{report} has no ok row with a time, memory, FLOPs, error or conditioning to draw")
    for path in paths:
        typer.echo(f"wrote {path}")
