import csv

import pytest

from attnbench.engine import default_output
from attnbench.errors import AttnbenchError
from attnbench.report import CsvReport, read_report


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
            read_report(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
