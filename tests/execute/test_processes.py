"""Timing across processes: interleaving, merged rows, the sidecar, the two-stage bootstrap, and
compare's caution with a single process."""

import json

import numpy as np
import pytest

from attnbench.errors import AttnbenchError
from attnbench.execute.engine import InProcess, run_cases
from attnbench.measure.bootstrap import ratio_interval
from attnbench.metrics import get_metric
from attnbench.metrics.policies import Judgement, random_source
from attnbench.metrics.time import ONE_PROCESS_THRESHOLD, time_columns
from attnbench.plan.case import Case, MeasureOptions, make_cases
from attnbench.results.report import PROCESS_COLUMN, SAMPLES_COLUMN, CsvReport, load, read_samples, sidecar_path
from attnbench.results.schema import Row, columns_for, new_row
from tests.conftest import cli


class Recorder:
    """A launcher that measures nothing: it records the calls and returns rows whose samples say
    which process made them (process p of a case: samples all equal to 10 + p)."""

    concurrency = 1

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def run(self, case, options):
        self.calls.append((case.seq_len, options.process_index, options.metrics))
        row = new_row(case)
        if (case.seq_len, options.process_index) in self.fail:
            row.update(status="crashed", status_detail="killed")
            return row
        groups = [[10.0 + options.process_index] * 5]
        peak = 1e9 if options.process_index == 0 else None
        row.update(status="ok", case_seconds=1.0, flops=100.0, machine_peak_flops_per_s=peak)
        row.samples = groups
        row.update(time_columns(groups, 1, row))
        return row

    def close(self):
        pass


def test_the_row_keeps_the_geometric_mean_of_the_per_process_medians():
    row = time_columns([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0], [5.0]], 1, {})
    assert row["time_ms_median"] == pytest.approx(100 ** (1 / 3)) and row["time_processes"] == 3
    assert row["time_process_spread"] == 5.0


def test_processes_are_interleaved_and_later_ones_only_time():
    launcher = Recorder()
    cases = make_cases(["full"], [128, 256])
    options = MeasureOptions(metrics=("flops", "time"), processes=3)
    rows = run_cases(cases, options, launcher=launcher).rows
    assert [(n, p) for n, p, _ in launcher.calls] == [(128, 0), (256, 0), (128, 1), (256, 1), (128, 2), (256, 2)]
    assert {m for _, p, m in launcher.calls if p > 0} == {("time",)}
    assert [r["seq_len"] for r in rows] == [128, 256]
    row = rows[0]
    assert row["time_processes"] == 3 and row["time_ms_median"] == pytest.approx((10 * 11 * 12) ** (1 / 3))
    assert row.samples == [[10.0] * 5, [11.0] * 5, [12.0] * 5]
    assert (row["time_ms_process_min"], row["time_ms_process_max"]) == (10.0, 12.0)
    assert row["time_process_spread"] == pytest.approx(1.2) and row["time_noisy"] is True  # spread > 10%
    assert row["machine_peak_flops_per_s"] == 1e9 and row["case_seconds"] == 3.0  # rate from process 1


def test_a_case_failing_in_its_first_process_is_not_timed_again_and_a_later_failure_is_said():
    launcher = Recorder(fail={(128, 0), (256, 1)})
    rows = run_cases(make_cases(["full"], [128, 256]), MeasureOptions(metrics=("time",), processes=3),
                     launcher=launcher).rows
    assert [(n, p) for n, p, _ in launcher.calls] == [(128, 0), (256, 0), (256, 1), (256, 2)]
    failed, timed = rows
    assert failed["status"] == "crashed"
    assert timed["status"] == "ok" and timed["time_processes"] == 2 and "process 2: crashed" in timed["status_detail"]


def test_several_processes_refuse_the_in_process_launcher():
    with pytest.raises(AttnbenchError, match="several processes"):
        run_cases([Case("full")], MeasureOptions(metrics=("time",), processes=2), launcher=InProcess())


def test_sidecar_keeps_each_process_and_reads_old_flat_sidecars(tmp_path):
    case = Case("full", seq_len=128)
    row = Row({**new_row(case), "status": "ok"}, samples=[[1.0, 2.0], [3.0], [4.0, 5.0]])
    path = tmp_path / "r.csv"
    with CsvReport(path, columns_for([case])) as report:
        report.write(row)
    entry = json.loads(sidecar_path(path).read_text())
    assert entry[SAMPLES_COLUMN] == [1.0, 2.0, 3.0, 4.0, 5.0] and entry[PROCESS_COLUMN] == [0, 0, 1, 2, 2]
    assert read_samples(path) == {case: [[1.0, 2.0], [3.0], [4.0, 5.0]]}
    assert load(path).rows[0].samples == [[1.0, 2.0], [3.0], [4.0, 5.0]]  # the row read back carries them
    del entry[PROCESS_COLUMN]  # a sidecar written before processes existed
    sidecar_path(path).write_text(json.dumps(entry) + "\n")
    assert read_samples(path) == {case: [[1.0, 2.0, 3.0, 4.0, 5.0]]}


def _timing(rng, processes, ratio=1.0, between=0.10, within=0.03, samples=15):
    """Synthetic samples: each process has its own level (log-normal, sd `between`), its samples
    scatter around it (sd `within`)."""
    return [list(ratio * np.exp(rng.normal(0, between) + rng.normal(0, within, samples))) for _ in range(processes)]


@pytest.mark.slow
def test_two_stage_bootstrap_covers_the_true_ratio_at_about_its_nominal_rate():
    rng, trials = np.random.default_rng(7), 120
    covered = pooled = 0
    for _ in range(trials):
        base, new = _timing(rng, 8), _timing(rng, 8, ratio=1.3)
        _, low, high = ratio_interval(base, new, rng, resamples=1000)
        covered += low <= 1.3 <= high
        # the same samples with processes ignored: the interval holds one process's spread only
        _, low, high = ratio_interval([sum(base, [])], [sum(new, [])], rng, resamples=1000)
        pooled += low <= 1.3 <= high
    assert 0.88 <= covered / trials <= 1.0
    assert pooled / trials < 0.7


def _judge(base, new):
    policy = get_metric("time").compare
    rows = [Row(time_columns(g, 1, {}), samples=g) for g in (base, new)]  # as the time metric writes them
    return policy.judge(*rows, Judgement(random_source(0)))


def test_one_process_is_never_confirmed_below_the_threshold():
    quiet = [[10.0 + 0.01 * i for i in range(30)]]
    below = 1 + ONE_PROCESS_THRESHOLD - 0.05
    state, detail = _judge(quiet, [[x * below for x in quiet[0]]])
    assert state == "ambiguous" and "one process" in detail
    state, _ = _judge(quiet, [[x * 1 / below for x in quiet[0]]])
    assert state == "ambiguous"
    above = 1 + ONE_PROCESS_THRESHOLD + 0.1
    assert _judge(quiet, [[x * above for x in quiet[0]]])[0] == "slower"
    # several processes: the same change is confirmed
    several = [[x * (1 + 0.01 * p) for x in quiet[0]] for p in range(5)]
    assert _judge(several, [[x * below for x in g] for g in several])[0] == "slower"


def test_one_process_without_samples_is_judged_from_iqrs_with_the_same_caution():
    policy = get_metric("time").compare
    base = {"time_ms_median": 10.0, "time_ms_iqr": 0.01, "time_processes": 1}
    new = {"time_ms_median": 13.0, "time_ms_iqr": 0.01, "time_processes": 1}
    assert policy.judge(base, new, Judgement())[0] == "ambiguous"
    several = {"time_ms_median": 10.0, "time_processes": 3, "time_ms_process_min": 9.9, "time_ms_process_max": 10.1}
    slower = {"time_ms_median": 13.0, "time_processes": 3, "time_ms_process_min": 12.9, "time_ms_process_max": 13.1}
    assert policy.judge(several, slower, Judgement())[0] == "slower"


@pytest.mark.parametrize("value", ["0", "x"])
def test_bad_process_counts_are_one_line_errors(value):
    result = cli("run", "-m", "full", "-n", "128", "--processes", value)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--processes" in result.stderr


def test_scenario_processes_is_checked(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('methods = ["full"]\nseq = 128\nprocesses = 0\n')
    result = cli("sweep", str(path), "--dry-run")
    assert result.returncode != 0 and "processes: must be a positive integer" in result.stderr


@pytest.mark.slow
def test_run_with_three_processes_writes_their_columns_samples_and_summary(tmp_path):
    out = tmp_path / "p.csv"
    result = cli("run", "-m", "full,linear", "-n", "128", "--heads", "1", "--head-dim", "8", "--metrics", "time",
                 "--processes", "3", "--min-time", "0.01", "--max-time", "0.05", "--quiet", "-o", str(out))
    assert result.returncode == 0, result.stderr
    import pandas as pd

    frame = pd.read_csv(out)
    assert (frame["time_processes"] == 3).all()
    assert (frame["time_ms_process_min"] <= frame["time_ms_median"]).all()
    assert (frame["time_ms_median"] <= frame["time_ms_process_max"]).all()
    assert (frame["time_process_spread"] >= 1).all()
    entries = [json.loads(line) for line in sidecar_path(out).read_text().splitlines()]
    assert len(entries) == 2 and all(set(e[PROCESS_COLUMN]) == {0, 1, 2} for e in entries)
    assert "process 2/3" in result.stdout  # progress of the earlier processes
    assert "one process" not in result.stdout  # the summary's +/- holds the spread between processes
