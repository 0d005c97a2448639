"""attnbench history: series over commits and their change points."""

import csv
import random

import pytest

from attnbench.judge.history import change_points, history
from tests.conftest import cli


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "one.csv"
    assert cli("run", "-m", "full,linear", "-n", "64,128", "--metrics", "flops", "-o", str(path)).returncode == 0
    return list(csv.DictReader(open(path)))


def _series(folder, template, commits: int, change):
    """One report per commit; change(row, commit) edits a copy of each template row."""
    paths = []
    for commit in range(commits):
        rows = []
        for row in template:
            row = dict(row, git_sha=f"{commit:040x}", timestamp=f"2026-12-{1 + commit:02d}T00:00:00")
            change(row, commit)
            rows.append(row)
        path = folder / f"c{commit:02d}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        paths.append(path)
    return paths


def test_a_commit_that_doubles_flops_is_marked_exactly(tmp_path, template):
    def double(row, commit):
        if row["method"] == "linear" and commit >= 4:
            row["flops"] = str(2 * int(row["flops"]))

    paths = _series(tmp_path, template, 7, double)
    series = {(s.label, s.metric): s for s in history(paths, ["flops"])}
    assert len(series) == 4
    for (label, _), s in series.items():
        if label.startswith("linear"):
            assert [(step.index, step.ratio) for step in s.steps] == [(4, 2.0)]
            assert s.commits[4] == f"{4:040x}"
        else:
            assert s.steps == []
    out = tmp_path / "history.csv"
    result = cli("history", *map(str, paths), "-o", str(out), "--metrics", "flops", "--plot")
    assert result.returncode == 0, result.stderr
    marked = [r for r in csv.DictReader(open(out)) if r["change_point"] == "True"]
    assert {(r["case"].split()[0], r["commit_index"], float(r["step_ratio"])) for r in marked} == {("linear", "4", 2.0)}
    assert out.with_suffix(".png").stat().st_size > 0
    again = cli("history", *map(str, paths), "-o", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize("seed", range(5))
def test_a_one_and_a_half_times_step_in_noisy_times_is_found_within_one_commit(seed):
    rng = random.Random(seed)
    step_at = rng.randint(4, 10)
    noisy = [10.0 * rng.lognormvariate(0, 0.05) * (1.5 if i >= step_at else 1.0) for i in range(14)]
    found = change_points(noisy, exact=False)
    assert len(found) == 1 and abs(found[0] - step_at) <= 1
    assert change_points([10.0 * rng.lognormvariate(0, 0.05) for _ in range(14)], exact=False) == []


def test_history_interval_brackets_the_step(tmp_path, template):
    rng = random.Random(7)

    def slow(row, commit):
        row["time_ms_median"] = str(5.0 * rng.lognormvariate(0, 0.03) * (1.5 if commit >= 6 else 1.0))

    paths = _series(tmp_path, template, 12, slow)
    series = [s for s in history(paths, ["time"]) if s.steps]
    assert len(series) == 4  # every case was slowed
    for s in series:
        (step,) = s.steps
        assert abs(step.index - 6) <= 1 and step.low < 1.5 < step.high * 1.05 and 1.3 < step.ratio < 1.7


def test_reports_from_other_hardware_are_named_in_a_warning(tmp_path, template):
    def machine(row, commit):
        row["cpu_model"] = "CPU A" if commit == 0 else "CPU B"

    paths = _series(tmp_path, template, 2, machine)
    lines = []
    history(paths, ["flops"], say=lines.append)
    assert len(lines) == 1 and "cpu_model" in lines[0] and "CPU A" in lines[0] and "c01.csv" in lines[0]


def test_reports_of_one_commit_are_points_in_the_order_they_ran(tmp_path, template):
    """Runs of one working tree (one git_sha): each report a point, ordered by time, not by name."""
    def one_commit(row, run):
        row["git_sha"] = "a" * 40
        row["timestamp"] = f"2026-12-0{3 - run}T00:00:00"  # written in the reverse order of their names
        if row["method"] == "linear" and run == 0:  # the last run (by time) counted twice the FLOPs
            row["flops"] = str(2 * int(row["flops"]))

    paths = _series(tmp_path, template, 3, one_commit)
    said = []
    series = history(paths, ["flops"], say=said.append)
    assert {s.by for s in series} == {"report"} and all(s.commits == ["c02", "c01", "c00"] for s in series)
    assert len(said) == 1 and "one commit" in said[0] and "ordered by when" in said[0]
    linear = [s for s in series if s.label.startswith("linear")]
    assert linear and all([(step.index, step.ratio) for step in s.steps] == [(2, 2.0)] for s in linear)
    out = tmp_path / "h.csv"
    result = cli("history", *map(str, paths), "-o", str(out), "--plot")
    assert result.returncode == 0, result.stderr
    assert "from report c00 (report 3 of 3)" in result.stdout and "one commit" in result.stderr
    rows = list(csv.DictReader(open(out)))
    assert {r["report"] for r in rows} == {"c00", "c01", "c02"} and {r["git_sha"] for r in rows} == {""}
    assert out.with_suffix(".png").stat().st_size > 0


def test_one_report_is_a_one_line_error(tmp_path, template):
    paths = _series(tmp_path, template, 1, lambda row, commit: None)
    result = cli("history", str(paths[0]), str(paths[0]), "-o", str(tmp_path / "h.csv"))
    assert result.returncode == 1 and "at least two reports" in result.stderr and len(result.stderr.splitlines()) == 1
