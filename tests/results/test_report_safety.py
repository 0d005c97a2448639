"""Reports that survive their writers: two writers at once, a full disk (a file-size limit) and a
writer killed mid-row never lose or corrupt a row. Real processes throughout."""

import csv
import os
import resource
import subprocess
import sys
import time

import pandas as pd
import pytest

from attnbench.plan.case import Case
from attnbench.results.report import CsvReport, load, lock_path, read_samples, sidecar_path
from attnbench.results.schema import Row, columns_for, new_row
from tests.conftest import cli, run_cli

TINY = ["--metrics", "flops", "-q", "--heads", "1", "--head-dim", "8", "--threads", "1", "--allocator", "system"]
GRID = ["-m", "full,linear", "-n", "64,128"]  # four rows: a full disk keeps two and a half of them
pytestmark = pytest.mark.xdist_group("report-safety")  # one uninterrupted sweep (`whole`) for the module


def _keys(path):
    with open(path, newline="") as f:
        return [(r["method"], r["seq_len"], r.get("param_normalize", "")) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The grid's report as one uninterrupted sweep writes it: what the damaged ones must become."""
    path = tmp_path_factory.mktemp("whole") / "whole.csv"
    assert cli("sweep", *GRID, *TINY, "-o", str(path)).returncode == 0
    return path


def _popen(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "attnbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _waits_on_a_lock(pid: int) -> bool:
    with open(f"/proc/{pid}/wchan") as f:  # the kernel function a sleeping process waits in
        return "lock" in f.read()


@pytest.mark.slow
def test_a_second_writer_is_refused_or_waits_and_no_row_is_lost(tmp_path):
    out, gate = tmp_path / "c.csv", tmp_path / "gate"
    # The first writer holds the report's lock until the gate opens: its first case waits for it.
    first = _popen("run", "-m", "tests.sweep_faults:Gate,full", "-n", "64", *TINY, "-o", str(out),
                   env={**os.environ, "ATTNBENCH_TEST_GATE": str(gate)})
    deadline = time.time() + 60
    while time.time() < deadline and not lock_path(out).exists():
        time.sleep(0.05)
    assert lock_path(out).exists()
    refused = run_cli("run", "-m", "linear", "-n", "64", *TINY, "-o", str(out), "--append")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1 and "is being written by process" in lines[0], refused.stderr
    waited = _popen("run", "-m", "linear", "-n", "64,128", *TINY, "-o", str(out), "--append", "--wait")
    while time.time() < deadline and waited.poll() is None and not _waits_on_a_lock(waited.pid):
        time.sleep(0.05)
    assert waited.poll() is None and first.poll() is None  # the second writer waits on the first
    gate.touch()
    assert first.wait(120) == 0 and waited.wait(120) == 0, waited.stderr.read()
    keys = _keys(out)
    assert [k[:2] for k in keys] == [("tests.sweep_faults:Gate", "64"), ("full", "64"), ("linear", "64"),
                                     ("linear", "128")]
    assert not lock_path(out).exists()


def _limit(size):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


@pytest.mark.slow
def test_a_full_disk_keeps_whole_rows_and_resume_completes_the_report(whole, tmp_path):
    lines = whole.read_bytes().splitlines(keepends=True)
    limit = len(lines[0]) + len(lines[1]) + len(lines[2]) + len(lines[3]) // 2  # room for 2.5 rows
    out = tmp_path / "r.csv"
    limited = subprocess.run([sys.executable, "-m", "attnbench", "sweep", *GRID, *TINY, "-o", str(out)],
                             capture_output=True, text=True, preexec_fn=_limit(limit), timeout=300)
    assert limited.returncode == 1, limited.stderr
    last = limited.stderr.strip().splitlines()[-1]
    assert "the file size limit was reached: 2 row(s) kept whole" in last and "--resume" in last
    assert len(pd.read_csv(out)) == 2 and out.read_bytes().endswith(b"\n")
    assert cli("sweep", *GRID, *TINY, "-o", str(out), "--resume").returncode == 0
    assert sorted(_keys(out)) == sorted(_keys(whole)) and len(set(_keys(out))) == 4
    judged = cli("compare", str(whole), str(out), "--metrics", "flops,sparsity", "--fail-on-missing")
    assert judged.returncode == 0 and "0 missing" in judged.stdout


@pytest.mark.slow
def test_a_row_cut_anywhere_is_left_out_then_resumed(whole, tmp_path):
    data = whole.read_bytes()
    last_start = data.rstrip(b"\r\n").rfind(b"\n") + 1
    last = data[last_start:]
    cuts = {"environment": len(last) - 20, "measured": last.index(b",ok,") + 40, "mid-number": last.index(b",ok,") + 6}
    for where, offset in cuts.items():
        cut = tmp_path / f"cut-{where}.csv"
        cut.write_bytes(data[:last_start + offset])
        report = load(cut, say=lambda line: None)
        assert len(report.rows) == 3, where
        judged = cli("compare", str(whole), str(cut), "--metrics", "flops")
        assert judged.returncode == 0 and "cut mid-write" in judged.stderr and "1 missing" in judged.stdout, where
        resumed = cli("sweep", *GRID, *TINY, "-o", str(cut), "--resume")
        assert resumed.returncode == 0 and "was removed and its case runs again" in resumed.stderr, where
        assert sorted(_keys(cut)) == sorted(_keys(whole)) and len(pd.read_csv(cut)) == 4, where


def test_a_torn_sidecar_record_is_cut_before_appending(tmp_path):
    case, other = Case("full", seq_len=64, threads=1), Case("full", seq_len=128, threads=1)
    path = tmp_path / "r.csv"
    with CsvReport(path, columns_for([case])) as report:
        report.write(Row({**new_row(case), "status": "ok"}, samples=[[1.0, 2.0]]))
    sidecar_path(path).write_bytes(sidecar_path(path).read_bytes()[:-7])  # a record cut mid-write
    with CsvReport(path, columns_for([other]), append=True, say=lambda line: None) as report:
        report.write(Row({**new_row(other), "status": "ok"}, samples=[[3.0]]))
    assert read_samples(path) == {other: [[3.0]]}
    assert all(line.endswith("}") for line in sidecar_path(path).read_text().splitlines())
