"""Human views of rows (rich). Only this module and cli.py draw on a terminal."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table


def _bytes(n: object) -> str:
    if not isinstance(n, int | float) or n != n:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "-"


def _flops(n: object) -> str:
    if not isinstance(n, int | float) or n != n:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _params(row: dict) -> str:
    """The parameters this row sets away from the method's defaults (the CSV has them all)."""
    from attnbench.registry import get_method

    try:
        defaults = {p.name: p.default for p in get_method(row["method"]).params()}
    except Exception:  # a report from a method not registered here: show everything
        defaults = {}
    shown = {k[6:]: v for k, v in row.items() if k.startswith("param_") and v not in (None, "")}
    return " ".join(f"{k}={v}" for k, v in shown.items() if k not in defaults or defaults[k] != v)


def rows_table(rows: Iterable[dict], title: str = "attnbench") -> Table:
    """One line per case: time (median ± IQR), FLOPs, peak memory, sparsity, status.

    '(!)' marks counted FLOPs more than 10% from the analytic formula; '~' a noisy time.
    """
    table = Table(title=title, title_justify="left")
    for name in ("method", "n", "mode", "time ms", "± IQR", "FLOPs", "peak mem", "sparsity",
                 "% matmul peak", "status"):
        table.add_column(name, justify="left" if name in ("method", "mode", "status") else "right")
    for row in rows:
        ok = row.get("status") == "ok"
        timed = ok and row.get("time_ms_median") is not None
        flops_cell = _flops(row.get("flops"))
        if row.get("flops_mismatch"):
            flops_cell = f"[yellow]{flops_cell} (!)[/yellow]"
        fraction = row.get("machine_peak_fraction")
        status = row.get("status") or "-"
        table.add_row(
            " ".join(filter(None, (row["method"], _params(row)))), str(row["seq_len"]), row["mode"],
            f"{row['time_ms_median']:.3f}" if timed else "-",
            (f"{row['time_ms_iqr']:.3f}" + (" ~" if row.get("time_noisy") else "")) if timed else "-",
            flops_cell, _bytes(row.get("peak_mem_bytes")),
            "-" if row.get("sparsity") is None else f"{row['sparsity']:.4g}",
            "-" if fraction is None else f"{100 * fraction:.1f}",
            status if ok else f"[red]{status}[/red] {row.get('error') or ''}")
    return table


def console(stderr: bool = False):
    """A rich console; wide enough for the table when output is not a terminal (logs, CI)."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=160)


class _Progress:
    """Sweep progress: a rich bar with ETA and the current case, or plain lines."""

    def __init__(self, screen, quiet: bool) -> None:
        self.screen, self.plain = screen, quiet or not screen.is_terminal
        self.done, self.total, self.bar, self.task = 0, 0, None, None

    def start(self, total: int) -> None:
        self.total = total
        if not self.plain:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=self.screen, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("sweep", total=total or None)

    def row(self, row: dict) -> None:
        self.done += 1
        params = _params(row)
        time_ms = row.get("time_ms_median")
        result = row["status"] if row["status"] != "ok" or time_ms is None else f"ok {time_ms:.2f} ms"
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        line = f"[{count}] {row['method']} {params} n={row['seq_len']}: {result}".replace("  ", " ")
        if row["status"] not in ("ok", "max_seq") and row.get("error"):
            line += f" ({row['error']})"
        if self.plain:
            self.screen.print(line, markup=False, highlight=False)
        else:
            self.bar.update(self.task, advance=1, description=line[:80])
            if row["status"] != "ok":
                self.bar.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class progress:
    """Context manager yielding a _Progress (start(total), row(row))."""

    def __init__(self, screen, quiet: bool = False) -> None:
        self.reporter = _Progress(screen, quiet)

    def __enter__(self) -> _Progress:
        return self.reporter

    def __exit__(self, *exc) -> None:
        self.reporter.close()


def _state(comparison_row, metric: str) -> str:
    state = comparison_row.states.get(metric, "")
    detail = comparison_row.details.get(metric)
    return f"{state} {detail}" if detail and state else state


def comparison_lines(comparison, metrics, markdown: bool) -> list[str]:
    """The rows that changed (and a count of those that did not), as Markdown or plain text."""
    changed = [r for r in comparison.rows if r.presence != "both" or any(s != "same" for s in r.states.values())]
    columns = ["case", "verdict", *metrics]
    verdict = lambda r: r.presence if r.presence != "both" else ("REGRESSION" if r.regressed else "ok")  # noqa: E731
    body = [[r.label, verdict(r), *[_state(r, m) or "-" for m in metrics]] for r in changed]
    for r, cells in zip(changed, body):
        if "status" in r.states:
            cells[1] += f" ({r.details['status']})"
    lines = []
    if markdown:
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        lines += ["  ".join(cells) for cells in body]
    same = len(comparison.rows) - len(changed)
    lines.append(f"{len(comparison.regressions)} regression(s), {len(comparison.missing)} missing, "
                 f"{sum(r.presence == 'new' for r in comparison.rows)} new, {same} unchanged row(s)")
    return lines
