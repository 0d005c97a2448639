import csv

import pytest

from attnbench.errors import AttnbenchError
from attnbench.results.report import CsvReport, default_output, load, sidecar_path
from tests.conftest import cli


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_are_written_as_they_come_and_never_overwritten(tmp_path):
    path = tmp_path / "r.csv"
    with CsvReport(path, ["method", "seq_len", "status"]) as report:
        report.write({"method": "full", "seq_len": 64, "status": "ok"})
        assert rows_of(path) == [{"method": "full", "seq_len": "64", "status": "ok"}]  # flushed already
    before = path.read_bytes()
    with pytest.raises(AttnbenchError, match="already exists; pass --append"):
        with CsvReport(path, ["method", "seq_len", "status"]):
            pass
    assert path.read_bytes() == before


def test_append_with_new_columns_keeps_every_old_row(tmp_path):
    path = tmp_path / "r.csv"
    with CsvReport(path, ["method", "seq_len", "status"]) as report:
        report.write({"method": "full", "seq_len": 64, "status": "ok"})
    with CsvReport(path, ["method", "param_k", "seq_len", "status"], append=True) as report:
        report.write({"method": "toy", "param_k": 3, "seq_len": 64, "status": "oom"})
    assert rows_of(path) == [{"method": "full", "seq_len": "64", "status": "ok", "param_k": ""},
                             {"method": "toy", "seq_len": "64", "status": "oom", "param_k": "3"}]


def test_default_paths_do_not_collide(tmp_path):
    first = default_output("run", tmp_path)
    first.write_text("x")
    assert default_output("run", tmp_path) != first


def test_unreadable_reports_are_one_line_errors(tmp_path):
    cases = {"missing.csv": None, "empty.csv": "", "binary.csv": b"\xff\xfe\x00garbage",
             "other.csv": "a,b\n1,2\n"}
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(AttnbenchError) as err:
            load(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_report_saved_by_pandas_reads_back_as_the_original(small_report, tmp_path):
    """Written, read back through pandas and saved: compare, summary, plot, resume and the reader
    treat the copy exactly as the original (pandas writes 128.0 for an int column with blanks,
    True for a bool, nothing for NaN)."""
    import shutil

    import pandas as pd

    from attnbench.execute.engine import run_cases
    from attnbench.plan.case import MeasureOptions, make_cases

    copy = tmp_path / "copy.csv"
    pd.read_csv(small_report).to_csv(copy, index=False)
    shutil.copy(sidecar_path(small_report), sidecar_path(copy))
    original, again = load(small_report), load(copy)
    assert [dict(r) for r in again.rows] == [dict(r) for r in original.rows]
    assert [r.samples for r in again.rows] == [r.samples for r in original.rows] and original.rows[0].samples
    assert isinstance(again.rows[0]["seq_len"], int) and isinstance(again.rows[0]["time_noisy"], bool)
    judged = cli("compare", str(small_report), str(copy))
    assert judged.returncode == 0
    assert "0 regression(s), 0 improved, 0 ambiguous, 0 missing, 0 new, 6 unchanged, 0 not compared" in judged.stdout
    assert cli("summary", str(copy)).stdout == cli("summary", str(small_report)).stdout
    assert cli("plot", str(copy), "-o", str(tmp_path), "--format", "png").returncode == 0
    cases = make_cases(["full", "full-explicit", "skyformer"], [128, 256], heads=2, head_dim=16, threads=1)
    assert {r.case for r in again.rows} == set(cases)
    resumed = run_cases(cases, MeasureOptions(metrics=("flops",)), output=copy, resume=True)
    assert resumed.rows == []  # every case is found done
