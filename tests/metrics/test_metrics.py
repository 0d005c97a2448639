"""The metric registry: every built-in metric is found, and a new metric declared in one file's
worth of code shows up in `run --metrics`, the CSV, the table and `compare`, touching nothing else."""

import csv
import importlib.util
from pathlib import Path

import pytest

from attnbench.metrics import all_metrics, get_metric, register_metric, unregister_metric
from attnbench.metrics.policies import Exact, Tolerance
from tests.conftest import QUICK, cli

ROOT = Path(__file__).resolve().parents[2]


def _docs_example(heading: str) -> str:
    """The first Python block under `heading` in docs/extending.md: the worked example, as printed."""
    text = (ROOT / "docs" / "extending.md").read_text()
    start = text.index("```python\n", text.index(heading)) + len("```python\n")
    return text[start:text.index("```", start)]


TOY_METRIC = _docs_example("### Adding a metric")


@pytest.fixture
def toy_metric(tmp_path):
    path = tmp_path / "toy_metric.py"
    path.write_text(TOY_METRIC)
    spec = importlib.util.spec_from_file_location("toy_metric", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    register_metric(module.METRIC)
    yield module.METRIC
    unregister_metric("toy")


def test_builtin_metrics_are_found_in_pass_order():
    names = [m.name for m in all_metrics()]
    assert set(names) >= {"sparsity", "flops", "fvcore", "memory", "error", "time"}
    assert names[-1] == "time"  # timed last, after every pass that could disturb it
    assert isinstance(get_metric("flops").compare, Exact) and isinstance(get_metric("memory").compare, Tolerance)


def test_a_toy_metric_shows_up_in_run_the_csv_the_table_and_compare(toy_metric, tmp_path):
    base = tmp_path / "base.csv"
    result = cli("run", "-m", "full,linear", "-n", "64", "--metrics", "flops,toy", "-o", str(base), *QUICK)
    assert result.returncode == 0, result.stderr
    assert "toy norm" in result.stdout  # the table
    with open(base, newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["toy_output_norm"]) > 0 for r in rows)  # the CSV
    same = cli("compare", str(base), str(base), "--metrics", "toy")
    assert same.returncode == 0 and "0 regression(s)" in same.stdout
    for row in rows:
        if row["method"] == "linear":
            row["toy_output_norm"] = str(2 * float(row["toy_output_norm"]))
    changed = tmp_path / "changed.csv"
    with open(changed, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    judged = cli("compare", str(base), str(changed), "--metrics", "toy", "--tolerance", "toy=0.5")
    assert judged.returncode == 1 and "linear" in judged.stdout and "REGRESSION" in judged.stdout
    unknown = cli("run", "-n", "64", "--metrics", "toys")
    assert unknown.returncode == 1 and "toy" in unknown.stderr  # the vocabulary lists it
    helped = cli("run", "--help")  # registered after the CLI was imported, yet listed
    assert "toy:" in helped.stdout.replace("│", " ").replace("\n", " ")


def test_a_new_metric_shows_in_the_table_the_plot_and_the_html_page(toy_metric, tmp_path):
    """Its one file declares its table column and its panel; the views read them."""
    from attnbench.results.report import load
    from attnbench.views.html import page
    from attnbench.views.plot import efficiency_figure

    report = tmp_path / "toy.csv"
    result = cli("run", "-m", "full,linear", "-n", "64,128", "--metrics", "flops,toy", "-o", str(report), *QUICK)
    assert result.returncode == 0 and "toy norm" in result.stdout, result.stderr
    figure = efficiency_figure(load(report).frame)
    assert "toy output norm" in [ax.get_ylabel() for ax in figure.axes]
    text = page([report])
    assert "<th>toy norm</th>" in text and "<th>FLOPs</th>" in text
    norms = [float(r["toy_output_norm"]) for r in csv.DictReader(report.open())]
    assert all(f'data-value="{n}"' in text for n in norms)  # sorted by the raw value


def test_an_option_declared_in_a_metric_s_file_reaches_run_scenarios_and_help(tmp_path):
    """docs/extending.md's option example: one file declares the metric and its --toy-ord."""
    import torch

    from attnbench.plan.scenario import scenario_from_dict

    path = tmp_path / "toy_p.py"
    path.write_text(_docs_example("### Adding a run/sweep option"))
    spec = importlib.util.spec_from_file_location("toy_p", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    register_metric(module.METRIC)
    try:
        norms = {}
        for order in ("1", "2"):
            result = cli("run", "-m", "full", "-n", "64", "--metrics", "toy_p", "--toy-ord", order, "-o", "-", *QUICK)
            assert result.returncode == 0, result.stderr
            norms[order] = float(next(csv.DictReader(result.stdout.splitlines()))["toy_norm_p"])
        assert norms["1"] > norms["2"] > 0  # |x|_1 >= |x|_2 for any x, equal only for one nonzero
        plan = scenario_from_dict({"methods": ["full"], "seq": 64, "toy_ord": 3})
        assert plan.options.setting("toy_ord") == 3.0 and plan.options.setting("other", "x") == "x"
        helped = cli("run", "--help").stdout
        assert "--toy-ord" in helped and "Toy p-norm metric" in helped
        assert torch.tensor([3.0, 4.0]).norm(p=1) == 7  # the reading the metric relies on
    finally:
        unregister_metric("toy_p")
    assert "--toy-ord" not in cli("run", "--help").stdout


def test_a_metric_name_can_be_registered_once():
    with pytest.raises(ValueError, match="twice"):
        register_metric(get_metric("flops"))
