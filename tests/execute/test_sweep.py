"""Sweeps: isolation and statuses, resume after SIGKILL, scenario validation."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--heads", "1", "--head-dim", "8", "--min-time", "0.02", "--max-time", "0.1", "--threads", "1"]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_failures_become_rows_with_their_status_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "faults.csv"
    faults = (f"tests.sweep_faults:{m}" for m in ("Hog", "Hang", "Suicide", "NaNs"))
    methods = ",".join(["full", *faults, "full-explicit"])
    # Two at once: the hanging case's timeout passes while the others run.
    result = cli("sweep", "-m", methods, "-n", "64", "--metrics", "flops", "--jobs", "2", "--max-memory", "1GB",
                 "--timeout", "4s", "-o", str(out), "-q", *QUICK)
    assert result.returncode == 0, result.stderr
    status = {r["method"].removeprefix("tests.sweep_faults:"): (r["status"], r["status_detail"]) for r in rows(out)}
    assert {m: s for m, (s, _) in status.items()} == {
        "full": "ok", "Hog": "oom", "Hang": "timeout", "Suicide": "crashed", "NaNs": "nan", "full-explicit": "ok"}
    assert "SIGKILL" in status["Suicide"][1] and "4 s" in status["Hang"][1]
    assert "6 row" in result.stdout and "1 oom" in result.stdout


@pytest.mark.slow
def test_sigkill_of_the_runner_then_resume_gives_each_case_once(tmp_path):
    out = tmp_path / "sweep.csv"
    # --allocator system: the allocator restart is test_cli's subject; here it would only cost time.
    # One process per case: the interleaving of --processes is test_processes' subject.
    args = ["sweep", "-m", "full,full-explicit", "-n", "32,64,128", "--metrics", "time", "-o", str(out),
            "-q", "--heads", "1", "--head-dim", "8", "--min-time", "0.05", "--max-time", "0.1", "--threads", "1",
            "--allocator", "system", "--processes", "1"]
    runner = subprocess.Popen([sys.executable, "-m", "attnbench", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(rows(out)) < 3):
        time.sleep(0.2)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    before = rows(out)
    assert 3 <= len(before) < 6
    finished = out.read_text()
    resumed = cli(*args, "--resume")  # in this process: the kill was the runner's
    assert resumed.returncode == 0, resumed.stderr
    after = rows(out)
    keys = [(r["method"], r["seq_len"]) for r in after]
    assert len(after) == 6 and len(set(keys)) == 6
    assert out.read_text().startswith(finished)  # finished rows untouched
    assert all(r["status"] == "ok" for r in after)


BAD_SCENARIOS = {
    "unknown key": ('methods = ["full"]\nseq = 64\nhead = 4\n', "head: unknown key; did you mean 'heads'"),
    "wrong type": ('methods = ["full"]\nseq = 64\nheads = "four"\n', "heads: must be a positive integer"),
    "unknown method": ('methods = ["fulll"]\nseq = 64\n', "unknown method 'fulll'"),
    "unknown parameter": ('methods = ["full"]\nseq = 64\nparams = { features = [1] }\n',
                          "no selected method has a parameter"),
    "empty grid": ('methods = []\nseq = 64\n', "methods: must be a list of method names"),
    "bad length": ('methods = ["full"]\nseq = "0..8"\n', "seq must be a positive whole number"),
    "not TOML": ('methods = ["full"\n', "not valid TOML"),
    "missing key": ('seq = 64\n', "methods: missing"),
    "bad memory": ('methods = ["full"]\nseq = 64\nmax_memory = "lots"\n', "max_memory must be a size"),
    "bad metric": ('methods = ["full"]\nseq = 64\nmetrics = ["speed"]\n', "metrics"),
    "impossible parameter": ('methods = ["skyformer"]\nseq = 64\nparams = { features = 0 }\n',
                             "features=0 is impossible"),
}


@pytest.mark.parametrize("kind", BAD_SCENARIOS)
def test_malformed_scenarios_are_one_line_errors_and_write_nothing(tmp_path, kind):
    text, message = BAD_SCENARIOS[kind]
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text + 'output = "' + str(tmp_path / "out.csv") + '"\n' if kind != "not TOML" else text)
    result = cli("sweep", str(scenario))
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.csv").exists()


def test_dry_run_lists_the_grid(tmp_path):
    scenario = tmp_path / "grid.toml"
    scenario.write_text('methods = ["full", "skyformer"]\nseq = "256..1k"\nheads = [1, 2]\n'
                        'params = { features = [16, 32] }\nseeds = [0, 1]\n')
    result = cli("sweep", str(scenario), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("36 case(s)")  # (1 + 2) x 3 x 2 x 2


@pytest.mark.slow
def test_find_max_seq_reports_the_boundary(tmp_path):
    out = tmp_path / "max.csv"
    result = cli("sweep", "-m", "full-explicit", "-n", "512", "--find-max-seq", "--metrics", "memory",
                 "--max-memory", "300MB", "-o", str(out), "-q", "--heads", "1", "--head-dim", "8", "--threads", "1")
    assert result.returncode == 0, result.stderr
    boundary = [r for r in rows(out) if r["status"] == "max_seq"]
    assert len(boundary) == 1
    # Two n x n float32 buffers alive at once must fit in 300 MiB: n <= sqrt(300 * 2**20 / 8) ~ 6270.
    # The cap counts address space, and glibc reserves 64 MiB per thread arena, so up to ~130 MiB of
    # it can go to arenas: n >= sqrt(170 * 2**20 / 8) ~ 4700.
    assert 4600 <= int(boundary[0]["seq_len"]) <= 6270, boundary[0]["status_detail"]
    assert "first failure" in boundary[0]["status_detail"]


@pytest.mark.slow
def test_run_and_sweep_of_one_grid_give_the_same_columns(tmp_path):
    grid = ["-m", "full,skyformer", "-n", "64", "-p", "features=16,32", "--metrics", "flops,memory,sparsity", *QUICK]
    ran, swept = tmp_path / "run.csv", tmp_path / "sweep.csv"
    assert cli("run", *grid, "-o", str(ran)).returncode == 0
    assert cli("sweep", *grid, "-o", str(swept), "-q").returncode == 0
    run_rows, sweep_rows = rows(ran), rows(swept)
    assert list(run_rows[0]) == list(sweep_rows[0]) and len(run_rows) == len(sweep_rows) == 3
    for a, b in zip(run_rows, sweep_rows):  # deterministic passes agree value for value
        assert {k: a[k] for k in ("method", "param_features", "status", "flops", "sparsity")} == \
               {k: b[k] for k in ("method", "param_features", "status", "flops", "sparsity")}


@pytest.mark.slow
def test_jobs_run_deterministic_passes_in_parallel_and_refuse_timing(tmp_path):
    grid = ["-m", "full,linear", "-n", "64", "--heads", "1", "--head-dim", "8", "--threads", "1", "-q"]
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert cli("sweep", *grid, "--metrics", "flops", "-o", str(one)).returncode == 0
    assert cli("sweep", *grid, "--metrics", "flops", "--jobs", "2", "-o", str(two)).returncode == 0
    flops = [sorted((r["method"], r["seq_len"], r["status"], r["flops"]) for r in rows(p)) for p in (one, two)]
    assert flops[0] == flops[1] and len(flops[0]) == 2
    refused = cli("sweep", *grid, "--metrics", "flops,time", "--jobs", "2")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1 and "would disturb their timings" in lines[0]


@pytest.mark.slow
def test_a_dead_template_is_restarted_and_the_case_still_runs():
    from multiprocessing import forkserver

    from attnbench.execute.workers import WorkerLauncher
    from attnbench.plan.case import MeasureOptions, make_cases

    (case,) = make_cases(["full"], [32], heads=1, head_dim=8, threads=1)
    launcher, options = WorkerLauncher(), MeasureOptions(metrics=("flops",))
    assert launcher.run(case, options)["status"] == "ok"
    template = forkserver._forkserver._forkserver_pid
    os.kill(template, signal.SIGKILL)
    time.sleep(0.2)
    assert launcher.run(case, options)["status"] == "ok"
    assert forkserver._forkserver._forkserver_pid not in (None, template)


def test_the_workers_template_imports_what_the_chosen_metrics_need():
    from attnbench.execute.workers import metric_imports

    # a time-only sweep (attnbench ab's rounds) skips torch._dynamo, about 2 s per sweep
    assert metric_imports(["time"]) == [] and metric_imports(["sparsity", "error", "time"]) == []
    assert metric_imports(["flops", "memory", "time"]) == ["torch._dynamo"]


@pytest.mark.slow
def test_bundled_scenarios_run_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no scenarios/ folder here
    listed = cli("scenarios")
    assert listed.returncode == 0 and "skyformer_table2" in listed.stdout and "sbm_table3" in listed.stdout
    for name in ("skyformer_table2", "skyformer-table2", "skyformer_table2.toml"):
        result = cli("sweep", name, "--dry-run")
        assert result.returncode == 0 and result.stdout.strip().splitlines()[-1].startswith("50 case(s)"), name
    unknown = cli("sweep", "no_such_scenario")
    assert unknown.returncode == 1
    assert "bundled: approx_breakdown, ci, founding_causal, gpu_check, llm_decode" in unknown.stderr
