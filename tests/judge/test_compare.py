"""attnbench compare: identical, slower, changed FLOPs, missing rows, hardware warning, Markdown."""

import csv
import json

import pytest

from attnbench.results.report import sidecar_path
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


def test_tripled_time_samples_of_one_method_fail_naming_it(base, tmp_path):
    # The report was timed in one process, so only a change beyond 1.60x can be confirmed; 3x
    # clears it whatever the noise of these tiny cases.
    def slower(row):
        if row["method"] == "skyformer":
            row["time_ms_median"] = str(3 * float(row["time_ms_median"]))
        return row

    def doubled(entry):
        if entry["method"] == "skyformer":
            entry["time_samples_ms"] = [3 * t for t in entry["time_samples_ms"]]
        return entry

    new = copy_report(base, tmp_path / "slow.csv", slower, doubled)
    result = cli("compare", str(base), str(new))
    assert result.returncode == 1, result.stdout
    regressed = [line for line in result.stdout.splitlines() if "REGRESSION" in line]
    assert len(regressed) == 2 and all(line.startswith("skyformer n=") for line in regressed)
    assert all("slower 3.00x" in line for line in regressed)


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

    def warm(row):  # the same cases, timed with the L2 left warm
        row["time_l2"] = "warm"
        return row

    result = cli("compare", str(base), str(copy_report(base, tmp_path / "warm.csv", warm)), "--metrics", "flops")
    assert "differ in time_l2" in result.stderr


def test_compare_bad_input_is_one_line(base, tmp_path):
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    for args, message in ((["no.csv", str(base)], "does not exist"),
                          ([str(tmp_path / "junk.csv"), str(base)], "not an attnbench report"),
                          ([str(base), str(base), "--metrics", "speed"], "--metrics takes names"),
                          ([str(base), str(base), "--tolerance", "flops=0.1"], "has no threshold to set")):
        result = cli("compare", *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr


def test_identity_is_by_value_so_a_report_that_went_through_pandas_still_matches(base, tmp_path):
    import shutil

    import pandas as pd

    frame = pd.read_csv(base)  # skyformer's param_features etc. come back as 128.0, blanks as NaN
    frame.loc[frame["method"] == "skyformer", "flops"] *= 2
    edited = tmp_path / "pandas.csv"
    frame.to_csv(edited, index=False)
    shutil.copy(sidecar_path(base), sidecar_path(edited))
    result = cli("compare", str(base), str(edited), "--metrics", "flops")
    assert result.returncode == 1 and "0 missing, 0 new" in result.stdout
    assert sum("REGRESSION" in line for line in result.stdout.splitlines()) == 2


def test_threads_are_part_of_a_case_s_identity(base, tmp_path):
    def other_threads(row):
        row["threads"] = str(int(row["threads"]) + 1)
        return row

    result = cli("compare", str(base), str(copy_report(base, tmp_path / "threads.csv", other_threads)),
                 "--metrics", "flops", "--allow-disjoint")
    assert "6 missing, 6 new" in result.stdout


def test_reports_that_share_no_case_are_an_error_naming_what_differs(base, tmp_path):
    def other_dtype(row):
        row["dtype"] = "float64"
        return row

    disjoint = copy_report(base, tmp_path / "f64.csv", other_dtype)
    result = cli("compare", str(base), str(disjoint), "--metrics", "flops")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "share no case" in lines[0]
    assert "dtype (float32 vs float64)" in lines[0] and "--allow-disjoint" in lines[0]
    listed = cli("compare", str(base), str(disjoint), "--metrics", "flops", "--allow-disjoint")
    assert listed.returncode == 2 and "6 missing, 6 new" in listed.stdout  # listed, yet nothing was judged
    assert "compared nothing" in listed.stderr


def test_a_report_missing_attnbench_columns_is_a_one_line_error(base, tmp_path):
    import pandas as pd

    pd.read_csv(base).drop(columns=["mode"]).to_csv(tmp_path / "no-mode.csv", index=False)
    result = cli("compare", str(base), str(tmp_path / "no-mode.csv"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "lacks the attnbench columns mode" in lines[0]


def test_text_output_has_headers_and_a_missing_sidecar_is_said(base, tmp_path):
    def more_flops(row):
        if row["method"] == "full":
            row["flops"] = str(int(row["flops"]) + 1)
        return row

    new = copy_report(base, tmp_path / "flops.csv", more_flops)
    sidecar_path(new).unlink()
    result = cli("compare", str(base), str(new))
    header = result.stdout.splitlines()[0].split()
    assert header[:2] == ["case", "verdict"]
    assert set(header[2:]) == {"time", "flops", "memory", "sparsity", "error", "conditioning", "swap", "profile",
                               "train"}
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note:") and "samples" in line]
    assert len(notes) == 1 and str(new) in notes[0] and "IQRs" in notes[0]
    one = [line for line in result.stderr.splitlines() if "one process each" in line]
    assert len(one) == 1 and str(base) in one[0] and str(new) in one[0]  # one line for both


# ---- a gate that compared nothing never passes ----

def _without_metric_columns(base, target):
    import pandas as pd

    from attnbench.metrics import all_metrics

    frame = pd.read_csv(base)
    lost = [c for m in all_metrics() for c in m.columns if c in frame]
    frame.drop(columns=lost).to_csv(target, index=False)
    return target


@pytest.mark.parametrize("against_itself", [False, True])
def test_a_report_that_lost_its_metric_columns_fails_the_gate_naming_them(base, tmp_path, against_itself):
    bare = _without_metric_columns(base, tmp_path / "bare.csv")
    left = bare if against_itself else base
    result = cli("compare", str(left), str(bare), "--metrics", "flops,time")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    assert "no flops column" in lines[0] and "'flops'" in lines[0] and "--metrics" in lines[0]
    assert "unchanged" not in result.stdout


def test_by_default_a_metric_new_lost_is_a_regression_on_every_row(base, tmp_path):
    bare = _without_metric_columns(base, tmp_path / "bare.csv")
    result = cli("compare", str(base), str(bare))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "6 regression(s)" in result.stdout and "0 unchanged" in result.stdout
    assert "lost no flops in NEW" in result.stdout
    alone = cli("compare", str(bare), str(bare))  # nothing to judge on either side
    assert alone.returncode == 2 and "has no column of a comparable metric" in alone.stderr


def test_blank_metric_values_are_lost_not_unchanged(base, tmp_path):
    def blank(row):
        row["flops"] = ""
        return row

    result = cli("compare", str(base), str(copy_report(base, tmp_path / "blank.csv", blank)), "--metrics", "flops")
    assert result.returncode == 1 and "6 regression(s)" in result.stdout, result.stdout
    both_blank = copy_report(base, tmp_path / "blank2.csv", blank)
    itself = cli("compare", str(both_blank), str(both_blank), "--metrics", "flops")
    assert itself.returncode == 2 and "6 not compared" in itself.stdout and "compared nothing" in itself.stderr


def test_a_report_whose_identity_columns_were_cut_is_an_error_naming_the_duplicates(base, tmp_path):
    import pandas as pd

    frame = pd.read_csv(base).drop(columns=["seq_len"])  # 128 and 256 fall back to one default
    frame.insert(0, "seq_len", 128)
    frame.to_csv(tmp_path / "cut.csv", index=False)
    result = cli("compare", str(base), str(tmp_path / "cut.csv"), "--metrics", "flops")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stdout + result.stderr
    assert "more than one row for 3 case(s)" in lines[0] and "full n=128" in lines[0]


def test_the_closing_line_counts_every_verdict_and_names_ambiguous_rows():
    from attnbench.judge.compare import Comparison, RowComparison
    from attnbench.views.render import comparison_lines

    rows = [RowComparison("a", {"time": "ambiguous"}, {"time": "1.04x [0.9, 1.2]"}),
            RowComparison("b", {"time": "faster"}), RowComparison("c", {"time": "same"}),
            RowComparison("d", presence="new"), RowComparison("e")]
    lines = comparison_lines(Comparison(rows, [], metrics=("time",)), ("time",), markdown=False)
    assert lines[-1] == ("0 regression(s), 1 improved, 1 ambiguous, 0 missing, 1 new, 1 unchanged, "
                         "1 not compared (5 row(s))")
    assert any(line.startswith("a ") and "ambiguous 1.04x" in line for line in lines)


def test_compare_judges_rows_as_values_without_files(base):
    from attnbench.judge.compare import compare_rows
    from attnbench.results.report import load

    rows = load(base).rows
    result = compare_rows(rows, rows, ["flops", "sparsity"])
    assert result.count()["unchanged"] == len(rows) and not result.compared_nothing
