"""One self-contained report page: `attnbench html REPORTS... -o site/` writes site/index.html
with everything inline (CSS, a small script, SVG figures), so it opens from the disk with no
server and no network, reads on a laptop screen and prints to PDF.

It holds the environment of each report, a sortable and filterable table of every row (failed
rows with their reasons), the efficiency, error, Pareto and density figures of the newest
report, the compare verdicts of the first report against the last when there are two or more
(or of an A/B report's HEAD against its BASE), and the history view (attnbench.judge.history) when
the reports come from several commits.
"""

from __future__ import annotations

import html
import io
import time
from pathlib import Path
from typing import Sequence

from attnbench.errors import AttnbenchError

ENVIRONMENT = ("git_sha", "attnbench_version", "torch_version", "python_version", "hostname", "cpu_model", "cpu_count",
               "device_name", "gpu_name", "gpu_driver", "cuda_version")

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1400px;
       padding: 0 1rem; color: #1d2330; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
     border-bottom: 1px solid #d5d9e0; }
.meta { color: #5a6272; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { border-bottom: 1px solid #e3e6eb; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f2f4f7; position: sticky; top: 0; cursor: pointer; user-select: none; white-space: nowrap; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td { background: #fff4f2; } td.reason { color: #9b2c1f; max-width: 28rem; }
.controls { display: flex; gap: .8rem; align-items: center; margin: .6rem 0; flex-wrap: wrap; }
.controls input { padding: .3rem .5rem; min-width: 18rem; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
.env td:first-child { color: #5a6272; white-space: nowrap; }
.regression { color: #9b2c1f; font-weight: 600; }
p.legend { color: #5a6272; font-size: 12px; margin: .15rem 0; }
@media print { .controls { display: none; } th { position: static; } body { max-width: none; margin: 0; }
               figure, table { break-inside: avoid; } }
"""

SCRIPT = """
(function () {
  const table = document.getElementById('rows');
  const body = table.tBodies[0];
  const headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach(function (th, index) {
    th.addEventListener('click', function () {
      const ascending = !th.classList.contains('sorted-asc');
      headers.forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(ascending ? 'sorted-asc' : 'sorted-desc');
      const rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        const x = a.cells[index].dataset.value, y = b.cells[index].dataset.value;
        const nx = parseFloat(x), ny = parseFloat(y);
        let order;
        if (x === '' || y === '') { order = (x === '') - (y === ''); return order; }
        order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  const text = document.getElementById('filter'), status = document.getElementById('status');
  function apply() {
    const words = text.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let shown = 0;
    Array.from(body.rows).forEach(function (row) {
      const content = row.textContent.toLowerCase();
      const visible = words.every(function (w) { return content.includes(w); }) &&
        (status.value === '' || row.dataset.status === status.value);
      row.hidden = !visible;
      shown += visible ? 1 : 0;
    });
    document.getElementById('shown').textContent = shown + ' of ' + body.rows.length + ' rows';
  }
  text.addEventListener('input', apply);
  status.addEventListener('change', apply);
  apply();
})();
"""


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prolog or doctype


def _cell(value, number: str | None = None, css: str = "") -> str:
    from attnbench.results.schema import text

    formatted = number and isinstance(value, int | float)
    shown = "" if value is None else number.format(value) if formatted else text(value)
    sort = "" if value is None else str(value)
    klass = f' class="{css}"' if css else ""
    return f'<td{klass} data-value="{html.escape(sort)}">{html.escape(shown)}</td>'


def _params(row: dict) -> str:
    from attnbench.results.schema import text

    return " ".join(f"{k.removeprefix('param_')}={text(v)}" for k, v in row.items()
                    if k.startswith("param_") and v is not None)


def _shape(row: dict) -> str:
    parts = [f"{row.get('batch')}x{row.get('heads')}x{row.get('seq_len')}x{row.get('head_dim')}"]
    if row.get("kv_heads"):
        parts.append(f"kv {row['kv_heads']}")
    if row.get("q_seq_len"):
        parts.append(f"q {row['q_seq_len']}")
    if row.get("causal"):
        parts.append("causal")
    return ", ".join(parts)


def _metric_cell(column, row: dict) -> str:
    """A metric's declared cell (attnbench.metrics.display.Column), sorted by its raw value."""
    shown = column.cell(row) if row.get("status") == "ok" else ""
    raw = row.get(column.sort) if column.sort else shown
    sort = "" if raw is None or raw == "-" else str(raw)
    return f'<td class="num" data-value="{html.escape(sort)}">{html.escape("" if shown == "-" else shown)}</td>'


def _table(reports: list[tuple[str, list[dict]]]) -> list[str]:
    """Every row: its case, then the table columns each metric declares (as the terminal table
    shows them), then its status and the reason a row failed."""
    from attnbench.views.render import shown_columns

    several = len(reports) > 1
    every = [r for _, rows in reports for r in rows]
    tasks = any(r.get("task") for r in every)
    revisions = any(r.get("revision") for r in every)
    metric_columns = shown_columns(every)
    heads = ["report"] * several + ["revision"] * revisions + ["method"] + ["task"] * tasks + [
        "parameters", "b x h x n x d", "dtype", "mode", "scope", "status",
        *(column.title(every) for column in metric_columns), "reason"]
    out = ['<table id="rows"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in heads) +
           "</tr></thead><tbody>"]
    for name, rows in reports:
        for row in rows:
            failed = row.get("status") != "ok"
            cells = [_cell(name)] * several + [_cell(row.get("revision"))] * revisions + [_cell(row.get("method"))]
            cells += [_cell(row.get("task"))] * tasks + [
                _cell(_params(row)), f'<td data-value="{row.get("seq_len")}">'
                f'{html.escape(_shape(row))}</td>', _cell(row.get("dtype")), _cell(row.get("mode")),
                _cell(row.get("scope")), _cell(row.get("status")),
                *(_metric_cell(column, row) for column in metric_columns),
                _cell(row.get("status_detail"), css="reason")]
            status = html.escape(str(row.get("status")))
            out.append(f'<tr data-status="{status}"{" class=failed" if failed else ""}>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    legend = [text for column in metric_columns if (text := column.explain(every))]
    out += [f'<p class="legend">{html.escape(text)}</p>' for text in legend]
    return out


def _environment(reports: list[tuple[str, list[dict]]]) -> list[str]:
    out = ['<table class="env"><thead><tr><th>setting</th>' +
           "".join(f"<th>{html.escape(name)}</th>" for name, _ in reports) + "</tr></thead><tbody>"]
    for key in ENVIRONMENT:
        values = [next((str(r[key]) for r in rows if r.get(key) not in (None, "")), "") for _, rows in reports]
        if any(values):
            out.append(f"<tr><td>{key}</td>" + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>")
    out.append("</tbody></table>")
    return out


def _figures(report) -> list[str]:
    from attnbench.views import accuracy, plot
    from attnbench.views.axes import describe
    from attnbench.views.learning import learning_figures

    frame = report.frame
    title = describe(frame)
    trained = learning_figures(frame, title)  # a training report: accuracy against cost, per task
    out = []
    for name, make in (("efficiency", plot.efficiency_figure), ("error", accuracy.error_figure),
                       ("quality", accuracy.quality_figure), ("pareto", accuracy.pareto_figure),
                       ("density", accuracy.density_figure)):
        if trained and name == "efficiency":
            continue
        fig = make(frame, title=title) if name == "efficiency" else make(frame, title)
        if fig is not None:  # each figure carries its own title: no caption under it
            out.append(f'<figure id="figure-{name}">{_svg(fig)}</figure>')
    return out + [f'<figure id="figure-{name}">{_svg(fig)}</figure>' for name, fig in trained.items()]


def _verdicts(base: str, base_rows: list, new: str, new_rows: list) -> list[str]:
    """compare's verdicts of NEW's rows against BASE's, as a summary line and a table of what changed."""
    from attnbench.errors import NothingToCompare
    from attnbench.judge.compare import compare_rows
    from attnbench.views.render import comparison_summary

    try:
        result = compare_rows(base_rows, new_rows, names=(base, new), allow_disjoint=True)
    except NothingToCompare as exc:
        return [f"<p>{html.escape(base)} (base) against {html.escape(new)}: {html.escape(str(exc))}</p>"]
    out = [f"<p>{html.escape(base)} (base) against {html.escape(new)}: {html.escape(comparison_summary(result))}</p>"]
    changed = [r for r in result.rows if r.verdict != "unchanged"]
    if changed:
        heads = ["case", "verdict", *result.metrics]
        out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in heads) + "</tr></thead><tbody>")
        for row in changed:
            cells = [row.label, row.verdict, *[" ".join(filter(None, (row.states.get(m), row.details.get(m)))) or "-"
                                               for m in result.metrics]]
            klass = ' class="regression"' if row.regressed else ""
            out.append(f"<tr{klass}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table>")
    return out


def _ab_verdicts(name: str, rows: list) -> list[str]:
    """An A/B report (attnbench ab: two values of `revision`): its second side judged against its first."""
    from attnbench.results.schema import Row

    revisions = list(dict.fromkeys(r["revision"] for r in rows if r.get("revision")))
    if len(revisions) != 2:
        return []
    halves = [[Row({**r, "revision": None}, samples=r.samples) for r in rows if r.get("revision") == revision]
              for revision in revisions]
    return [f"<p>A/B report {html.escape(name)}: {html.escape(revisions[1])} against "
            f"{html.escape(revisions[0])}</p>", *_verdicts("base", halves[0], "head", halves[1])]


def _history(reports: list) -> list[str]:
    from attnbench.judge.history import series_of
    from attnbench.views.plot import history_figure

    try:
        series = series_of([(str(r.path), r.rows) for r in reports])
    except AttnbenchError:  # one report: no history to show
        return []
    stepped = [s for s in series if s.steps]
    points = "reports of one commit" if series and series[0].by == "report" else "commits"
    out = [f"<p>{len(series)} series over {max(len(s.commits) for s in series)} {points}; "
           f"{len(stepped)} with a change point.</p>"] if series else []
    if stepped:
        out.append("<table><thead><tr><th>case</th><th>metric</th><th>from commit</th><th>step</th>"
                   "<th>95% interval</th></tr></thead><tbody>")
        for s in stepped:
            for step in s.steps:
                out.append(f"<tr><td>{html.escape(s.label)}</td><td>{s.column}</td><td>{s.commits[step.index][:12]}</td>"
                           f"<td>x{step.ratio:.3g}</td><td>[{step.low:.3g}, {step.high:.3g}]</td></tr>")
        out.append("</tbody></table>")
    if series:
        out.append(f'<figure id="figure-history">{_svg(history_figure(series))}</figure>')
    return out


def page(paths: Sequence[str | Path]) -> str:
    """The page's HTML for these reports (in the order given: the first is compare's base)."""
    from attnbench.results.report import load

    paths = [Path(p) for p in paths]
    if not paths:
        raise AttnbenchError("give at least one report")
    loaded = [load(p, say=lambda line: None) for p in paths]  # each report read once
    reports = [(p.name, report.rows) for p, report in zip(paths, loaded)]
    rows = sum(len(r) for _, r in reports)
    failed = sum(r.get("status") != "ok" for _, rs in reports for r in rs)
    statuses = sorted({str(r.get("status")) for _, rs in reports for r in rs})
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>attnbench: {html.escape(', '.join(n for n, _ in reports))}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>attnbench report: {html.escape(', '.join(n for n, _ in reports))}</h1>",
             f'<p class="meta">{rows} rows, {failed} not ok; written {time.strftime("%Y-%m-%d %H:%M")} by '
             "attnbench html</p>", "<h2>Environment</h2>", *_environment(reports),
             "<h2>Rows</h2>", '<div class="controls"><input id="filter" type="search" '
             'placeholder="filter: words that every shown row contains" aria-label="filter rows">'
             '<select id="status" aria-label="status"><option value="">every status</option>' +
             "".join(f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in statuses) +
             '</select><span id="shown"></span></div>', *_table(reports),
             f"<h2>Figures ({html.escape(paths[-1].name)})</h2>", *_figures(loaded[-1])]
    ab = _ab_verdicts(paths[-1].name, reports[-1][1]) if len(paths) == 1 else []
    if ab:
        parts += ["<h2>Compare</h2>", *ab]
    if len(paths) > 1:
        parts += ["<h2>Compare</h2>", *_verdicts(*reports[0], *reports[-1])]
        shown = _history(loaded)
        if shown:
            parts += ["<h2>History</h2>", *shown]
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts)


def write_site(paths: Sequence[str | Path], folder: str | Path, force: bool = False) -> Path:
    """Write folder/index.html; an existing page is replaced only with `force`."""
    from attnbench.results.report import refuse_to_replace

    folder = Path(folder)
    target = folder / "index.html"
    if not force:
        refuse_to_replace([target], "pass --force to replace it, or choose another -o")
    text = page(paths)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / ".index.html.partial"
    partial.write_text(text)
    partial.replace(target)
    return target
