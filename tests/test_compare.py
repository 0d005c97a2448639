"""attnbench compare: identical, slower, changed FLOPs, missing rows, hardware warning, Markdown."""

import csv
import json

import pytest

from attnbench.report import sidecar_path
from tests.conftest import cli


@pytest.fixture
def base(small_report):
    return small_report


def copy_report(base, target, edit_row=None, edit_samples=None):
    with open(base, newline="") as f:
        rows = list(csv.DictReader(f))
    rows = [r for r in (edit_row(r) if edit_row else r for r in rows) if r is not None]
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [json.loads(line) for line in sidecar_path(base).read_text().splitlines()]
    sidecar_path(target).write_text("".join(json.dumps(edit_samples(e) if edit_samples else e) + "\n" for e in lines))
    return target


def test_identical_reports_pass(base, tmp_path):
    same = copy_report(base, tmp_path / "same.csv")
    result = cli("compare", str(base), str(same))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 regression(s)" in result.stdout


def test_doubled_time_samples_of_one_method_fail_naming_it(base, tmp_path):
    def slower(row):
        if row["method"] == "skyformer":
            row["time_ms_median"] = str(2 * float(row["time_ms_median"]))
        return row

    def doubled(entry):
        if entry["method"] == "skyformer":
            entry["time_samples_ms"] = [2 * t for t in entry["time_samples_ms"]]
        return entry

    new = copy_report(base, tmp_path / "slow.csv", slower, doubled)
    result = cli("compare", str(base), str(new))
    assert result.returncode == 1, result.stdout
    regressed = [line for line in result.stdout.splitlines() if "REGRESSION" in line]
    assert len(regressed) == 2 and all(line.startswith("skyformer n=") for line in regressed)
    assert all("slower 2.00x" in line for line in regressed)


def test_changed_flops_fail(base, tmp_path):
    def more_flops(row):
        if row["method"] == "full" and row["seq_len"] == "128":
            row["flops"] = str(int(row["flops"]) + 1)
        return row

    result = cli("compare", str(base), str(copy_report(base, tmp_path / "flops.csv", more_flops)),
                     "--metrics", "flops,sparsity")
    assert result.returncode == 1 and "full n=128  REGRESSION  slower" in result.stdout


def test_missing_rows_are_reported_and_fail_only_when_asked(base, tmp_path):
    new = copy_report(base, tmp_path / "fewer.csv", lambda r: None if r["method"] == "full-explicit" else r)
    lenient = cli("compare", str(base), str(new), "--metrics", "flops")
    assert lenient.returncode == 0 and "2 missing" in lenient.stdout
    strict = cli("compare", str(base), str(new), "--metrics", "flops", "--fail-on-missing")
    assert strict.returncode == 1


def test_other_hardware_is_warned_and_markdown_is_a_table(base, tmp_path):
    def elsewhere(row):
        row["cpu_model"] = "Some Other CPU"
        return row

    result = cli("compare", str(base), str(copy_report(base, tmp_path / "other.csv", elsewhere)),
                     "--format", "markdown", "--metrics", "flops")
    assert result.returncode == 0 and "differ in cpu_model" in result.stderr
    assert result.stdout.splitlines()[-1].startswith("0 regression(s)")


def test_compare_bad_input_is_one_line(base, tmp_path):
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    for args, message in ((["no.csv", str(base)], "does not exist"),
                          ([str(tmp_path / "junk.csv"), str(base)], "not an attnbench report"),
                          ([str(base), str(base), "--metrics", "speed"], "--metrics takes names"),
                          ([str(base), str(base), "--tolerance", "flops=0.1"], "has no threshold to set")):
        result = cli("compare", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr
