"""Human views of rows (rich): number formats, the table's columns and the figure's panels that
metrics declare, the table, progress, and compare's lines. Only this module and cli.py draw on a
terminal."""

from __future__ import annotations

from typing import Iterable

from rich.markup import escape
from rich.table import Table

from attnbench.metrics import all_metrics
from attnbench.plan.case import Case
from attnbench.results.schema import Labeller, text


def _has_values(rows: list[dict], columns: Iterable[str]) -> bool:
    return any(row.get(c) not in (None, "") and row.get(c) == row.get(c) for row in rows for c in columns)


def shown_columns(rows: list[dict]) -> list:
    """The table columns (attnbench.metrics.display.Column) that every metric with values in these
    rows declares, in pass order: the terminal table and the html page show the same."""
    return [column for metric in all_metrics() if _has_values(rows, metric.columns) for column in metric.table
            if column.shown(rows, _has_values)]


def legend_lines(rows: list[dict], shown: list) -> list[str]:
    """Under the table: the set-up every row shares (heads, kv heads, head_dim, ...), then what
    each shown column's marks and basis mean, where these rows show them."""
    setup = shared_setup(rows)
    lines = [setup] if setup else []
    return lines + sentinel_defaults(rows) + [text for column in shown if (text := column.explain(rows))]


def sentinel_defaults(rows: list[dict]) -> list[str]:
    """What a parameter's default stands for where rows run with it and it is a sentinel (SBM's
    density 0: as initialised), e.g. 'sbm: density 0.0 = as initialised, ...'."""
    from attnbench.methods.registry import get_method

    lines = []
    for method in dict.fromkeys(str(row.get("method")) for row in rows):
        try:
            specs = get_method(method).params()
        except Exception:  # a method of another revision or package: nothing to say about it
            continue
        for spec in specs:
            if spec.default_means and any(row.get("method") == method and text(row.get(f"param_{spec.name}"))
                                          == text(spec.default) for row in rows):
                lines.append(f"{method}: {spec.name} {spec.default} = {spec.default_means}")
    return lines


SHARED_SETUP = (("batch", "batch {}"), ("heads", "heads {}"), ("kv_heads", "kv heads {}"), ("head_dim", "head_dim {}"),
                ("q_seq_len", "q_seq {}"), ("dtype", "{}"), ("mode", "{}"), ("causal", "causal"),
                ("window", "window {}"), ("sinks", "sinks {}"), ("documents", "{} documents"),
                ("softcap", "softcap {}"), ("cache", "{} cache"), ("device", "on {}"),
                ("scope", "{} scope"), ("train_task", "task {}"), ("pairs", "{} pairs"), ("vocab", "vocab {}"),
                ("threads", "{} thread(s)"), ("time_processes", "timed in {} process(es)"))


def shared_setup(rows: list[dict]) -> str:
    """'all rows: batch 1, heads 4, kv heads 4, head_dim 64, float32, forward, on cpu, ...': the
    set-up the case column leaves out because every row has it (kv heads = heads where unset)."""
    parts = []
    for column, form in SHARED_SETUP:
        values = {_setup_value(row, column) for row in rows} - {None}
        if len(values) == 1 and (value := values.pop()) not in ("", False):
            parts.append(form.format(value))
    return "all rows: " + ", ".join(parts) if parts else ""


def _setup_value(row: dict, column: str):
    value = row.get(column)
    if column == "kv_heads" and value in (None, "", 0):
        value = row.get("heads")  # unset: as many as the query heads
    if column == "time_processes" and row.get("time_ms_median") in (None, ""):
        return None
    if column == "cache" and value == "kv":
        return ""  # the default: nothing to say
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None or value != value else value


def rows_table(rows: Iterable[dict], title: str = "attnbench") -> Table:
    """One line per case: the columns of every metric the rows have values for, and the status.

    '(!)' marks counted FLOPs more than 10% from the analytic formula; '~' a noisy time.
    """
    rows = list(rows)
    label = Labeller(rows, with_length=False)
    shown = shown_columns(rows)
    legend = "\n".join(escape(line) for line in legend_lines(rows, shown))
    table = Table(title=title, title_justify="left", caption=legend, caption_justify="left")
    table.add_column("case")
    table.add_column("n", justify="right")
    for column in shown:
        table.add_column(column.title(rows), justify="right")
    table.add_column("status")
    for row in rows:
        ok = row.get("status") == "ok"
        status = row.get("status") or "-"
        detail = escape(str(row.get("status_detail") or ""))
        table.add_row(escape(label(row)), str(row["seq_len"]), *(column.cell(row) if ok else "-" for column in shown),
                      status if ok else f"[red]{status}[/red] {detail}")
    return table


def console(stderr: bool = False):
    """A rich console; wide enough for the table when output is not a terminal (logs, CI)."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=160)


class Progress:
    """Progress of a run or sweep: a rich bar with ETA and the current case, or plain lines.

    Use as a context manager; `start(total)` once, `row(row)` as each row arrives, and `step(row)`
    for each process of a case timed in `processes` but its last (the bar moves a share of a case).
    """

    def __init__(self, screen, cases_rows: list[dict], quiet: bool = False, processes: int = 1) -> None:
        self.screen, self.plain = screen, quiet or not screen.is_terminal
        self.label = Labeller(cases_rows)
        self.done, self.total, self.bar, self.task = 0, 0, None, None
        self.processes, self.steps = processes, {}  # row key -> processes of that case already done

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, total: int) -> None:
        self.total = total
        if not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TimeRemainingColumn(), console=self.screen, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("cases", total=total or None)

    def step(self, row: dict) -> None:
        key = Case.of(row)
        self.steps[key] = self.steps.get(key, 0) + 1
        time_ms = row.get("time_ms_median")
        line = (f"[{self.done + 1}/{self.total}] {self.label(row)}: process {self.steps[key]}/{self.processes} "
                + (f"{time_ms:.2f} ms" if isinstance(time_ms, float) else row["status"]))
        if self.plain:
            self.screen.print(line, markup=False, highlight=False)
        else:
            self.bar.update(self.task, advance=1 / self.processes, description=line[:80])

    def row(self, row: dict) -> None:
        share = 1 - self.steps.pop(Case.of(row), 0) / self.processes  # what its steps did not move
        self.done += 1
        time_ms = row.get("time_ms_median")
        result = row["status"] if row["status"] != "ok" or time_ms is None else f"ok {time_ms:.2f} ms"
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        line = f"[{count}] {self.label(row)}: {result}"
        if row["status"] not in ("ok", "max_seq") and row.get("status_detail"):
            line += f" ({row['status_detail']})"
        if self.plain:
            self.screen.print(line, markup=False, highlight=False)
        else:
            self.bar.update(self.task, advance=share, description=line[:80])
            if row["status"] != "ok":
                self.bar.console.print(line, markup=False, highlight=False)


def _state(comparison_row, metric: str) -> str:
    state = comparison_row.states.get(metric, "")
    detail = comparison_row.details.get(metric)
    return f"{state} {detail}" if detail and state else state


def comparison_lines(comparison, metrics, markdown: bool) -> list[str]:
    """The rows that changed (and a count of every verdict), as Markdown or plain text."""
    changed = [r for r in comparison.rows if r.verdict != "unchanged"]
    columns = ["case", "verdict", *metrics]

    def verdict(r) -> str:
        word = {"regression": "REGRESSION", "unchanged": "ok"}.get(r.verdict, r.verdict)
        return f"{word} ({r.details['status']})" if r.states.get("status", "same") != "same" else word

    body = [[r.label, verdict(r), *[_state(r, m) or "-" for m in metrics]] for r in changed]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    elif body:  # aligned columns under a header
        widths = [max(len(cells[i]) for cells in [columns, *body]) for i in range(len(columns))]
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
                  for cells in [columns, *body]]
    lines.append(comparison_summary(comparison))
    return lines


def comparison_summary(comparison) -> str:
    """One line that counts every verdict, e.g. '0 regression(s), 0 improved, 1 ambiguous, ...'."""
    counts = comparison.count()
    words = [f"{counts.pop('regression')} regression(s)", *(f"{n} {word}" for word, n in counts.items())]
    line = ", ".join(words) + f" ({len(comparison.rows)} row(s))"
    return line + ("; nothing was compared" if comparison.compared_nothing else "")


def dry_run_lines(cases, metrics, processes: int, limits) -> list[str]:
    """What a dry run lists: each case on a line, then what is measured per process and the limits
    (None: the cases run in this process, where no limit applies)."""
    from attnbench.metrics import chosen
    from attnbench.results.schema import identity

    label = Labeller([identity(c) for c in cases])
    lines = []
    for i, case in enumerate(cases, 1):
        shape = "".join([f" kv_heads={case.kv_heads}" if case.kv_heads else "",
                         f" q_seq={case.q_seq_len}" if case.q_seq_len else "", " causal" if case.causal else "",
                         f" window={case.window}" if case.window else "", f" sinks={case.sinks}" if case.sinks else "",
                         f" documents={case.documents}" if case.documents else "",
                         f" softcap={case.softcap:g}" if case.softcap else "",
                         f" cache={case.cache}" if case.cache != "kv" else ""])
        lines.append(f"{i:4d}  {label(identity(case))}  batch={case.batch} heads={case.heads} "
                     f"head_dim={case.head_dim}{shape} {case.dtype} {case.mode} seed={case.seed}")
    again = [m for m in chosen(metrics) if m.per_process]
    names = ", ".join(m.name for m in again)
    where = (f"{names} in {processes} processes each" if again and processes > 1 else
             f"{names} in one process each" if again else "nothing measured per process")
    bounds = (f"limits: {limits.max_memory_bytes / 2**30:g} GiB, {limits.timeout_s:g} s per case" if limits else
              "in this process, no memory or time limit (sweep runs each case in a capped worker)")
    lines.append(f"{len(cases)} case(s), {where}; {bounds}")
    return lines
