"""The founding papers' efficiency tables (attnbench/data/papers.toml) and the side-by-side view
`attnbench summary --relative-to REF [--paper NAME]` prints: each method's time, peak memory and
FLOPs relative to REF, per task (or length), in the papers' layout (methods x tasks), and the
paper's own ratios beside ours with whether the ordering of methods agrees."""

from __future__ import annotations

from importlib import resources

from attnbench import tomlfile
from attnbench.errors import AttnbenchError
from attnbench.metrics.policies import numeric
from attnbench.results.schema import Labeller, setup_of

# Our tables and their columns; a paper's "flops" sits beside both FLOP tables (SBM's Table 3 counted
# by hand, and its ratios match attention-only counts: compare it with "attention flops").
COLUMNS = {"time": "time_ms_median", "memory": "peak_mem_bytes", "flops": "flops",
           "attention flops": "flops_attention"}


def paper_tables() -> dict[str, dict]:
    return tomlfile.loads(resources.files("attnbench").joinpath("data/papers.toml").read_text())


def paper_table(name: str) -> dict:
    tables = paper_tables()
    if name not in tables:
        raise AttnbenchError(f"unknown paper table {name!r}; use one of {', '.join(tables)}")
    return tables[name]


def _task(row: dict) -> str:
    task = row.get("task")
    return str(task) if isinstance(task, str) and task else f"n={row['seq_len']}"


def _without_task(rows: list[dict]) -> list[dict]:
    """Rows as one method x tasks table names them: without what a task sets (its length, batch,
    and parameters that take one value per task, like SBM's density per LRA task)."""
    seen: dict[tuple, set] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("param_"):
                seen.setdefault((row["method"], key, _task(row)), set()).add(str(value))
    within = {(method, key) for (method, key, _), values in seen.items() if len(values) > 1}
    return [{k: ("" if k in ("task", "seq_len", "batch") or k.startswith("param_") and (r["method"], k) not in within
                 else v) for k, v in r.items()} for r in rows]


def relative(rows: list[dict], reference: str, metric: str) -> dict[str, dict[str, float]]:
    """{case label: {task: value / the reference's value on the same task and set-up}}."""
    column = COLUMNS[metric]
    ok = [r for r in rows if r.get("status") == "ok" and numeric(r, column) is not None]
    base = {setup_of(r): numeric(r, column) for r in ok if r["method"] == reference}
    named = _without_task(ok)
    label = Labeller(named, with_length=False)
    out: dict[str, dict[str, float]] = {}
    for row, name in zip(ok, named):
        denominator = base.get(setup_of(row))
        if denominator:
            out.setdefault(label(name), {})[_task(row)] = numeric(row, column) / denominator
    return out


def _kendall(pairs: list[tuple[float, float]]) -> float | None:
    """Kendall's tau-a of two rankings (ties count as discordant halves); None below 2 pairs."""
    if len(pairs) < 2:
        return None
    score, total = 0.0, 0
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            a, b = pairs[i][0] - pairs[j][0], pairs[i][1] - pairs[j][1]
            score += 1 if a * b > 0 else -1 if a * b < 0 else 0
            total += 1
    return score / total


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"


def relative_lines(rows: list[dict], reference: str, paper: str | None = None) -> list[str]:
    """The ratio tables as text lines (Markdown tables, readable as they are)."""
    table = paper_table(paper) if paper else None
    lines = []
    if table:
        lines += [f"Paper: {table['citation']}.",
                  f"Its baseline row, {table['baseline']}, stands for {reference} here; cells are ours | paper's."]
    for metric in COLUMNS:
        ours = relative(rows, reference, metric)
        if not ours:
            continue
        tasks = table["tasks"] if table else sorted({t for values in ours.values() for t in values},
                                                   key=lambda t: (len(t), t))
        theirs = _paper_ratios(table, metric, reference) if table else {}
        lines += ["", f"{metric} relative to {reference}" + (" (ours | paper)" if theirs else ""),
                  "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for label, values in ours.items():
            method = label.split(" ")[0]
            cells = [_fmt(values.get(t)) + (f" \\| {_fmt(theirs[method][i])}" if method in theirs else "")
                     for i, t in enumerate(tasks)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if theirs:
            agree = []
            for i, task in enumerate(tasks):
                pairs = [(values[task], theirs[label.split(' ')[0]][i]) for label, values in ours.items()
                         if task in values and label.split(" ")[0] in theirs]
                tau = _kendall(pairs)
                agree.append("-" if tau is None else "yes" if tau == 1 else f"no (tau {tau:.2f})")
            lines.append("| ordering agrees | " + " | ".join(agree) + " |")
    return lines or [f"no ok rows with a {reference} row on the same set-up to divide by"]


def _paper_ratios(table: dict, metric: str, reference: str) -> dict[str, list[float]]:
    """{attnbench method: the paper's value / its baseline's, per task}; the baseline row stands
    for `reference`, whatever method it names."""
    metric = metric.split()[-1]  # "attention flops" is compared with the paper's "flops"
    rows = table["rows"]
    base = rows[table["baseline"]].get(metric)
    if base is None:
        return {}
    return {(reference if name == table["baseline"] else row["method"]): [v / b for v, b in zip(row[metric], base)]
            for name, row in rows.items() if metric in row}
