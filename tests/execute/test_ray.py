"""Sweeps on Ray: a real local cluster on loopback (2 CPUs), the same rows as local workers, a Ray
worker killed mid-case, and resume after the driver is interrupted."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from attnbench.execute.engine import run_cases
from attnbench.plan.case import Limits, MeasureOptions, make_cases

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one Ray cluster, in one worker
ROOT = Path(__file__).resolve().parents[2]
DETERMINISTIC = ("method", "seq_len", "status", "flops", "flops_attention", "sparsity", "peak_mem_bytes")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})  # workers import tests.sweep_faults
    yield
    ray.shutdown()


def _launcher(limits=None):
    from attnbench.execute.ray_launcher import RayLauncher

    return RayLauncher(limits or Limits(timeout_s=120))


def test_ray_rows_equal_local_rows_apart_from_timing(cluster, tmp_path):
    cases = make_cases(["linear"], [256], heads=2, head_dim=16, threads=1)  # one task: one Ray worker to start
    options = MeasureOptions(metrics=("flops", "memory", "sparsity"))
    on_ray = run_cases(cases, options, launcher=_launcher(), output=tmp_path / "ray.csv").rows
    # In this process: the same rows as local workers give (test_sweep checks that parity), sooner.
    local = run_cases(cases, options, output=tmp_path / "local.csv").rows
    def deterministic(rows):  # Ray's rows arrive in the order their tasks end
        return sorted((tuple(r[c] for c in DETERMINISTIC) for r in rows), key=str)

    assert deterministic(on_ray) == deterministic(local) and all(r["status"] == "ok" for r in on_ray)


def _kill_ray_task_workers() -> int:
    """SIGKILL every Ray worker process now running our task (its title is ray::_run_isolated)."""
    killed = 0
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ray::_run_isolated" in cmdline:
            os.kill(int(pid), signal.SIGKILL)
            killed += 1
    return killed


def test_a_ray_worker_lost_mid_case_is_a_crashed_row_and_the_sweep_goes_on(cluster, tmp_path):
    cases = make_cases(["tests.sweep_faults:Hang"], [32], heads=1, head_dim=8, threads=1)
    cases += make_cases(["full"], [32, 64], heads=1, head_dim=8, threads=1)
    finished = []
    only_hang_left = threading.Event()

    def count(row):
        finished.append(row)
        if len(finished) == 2:  # both `full` cases are in: the only task still running is Hang's
            only_hang_left.set()

    def killer():  # generous waits: on a loaded machine Ray's workers start slowly, and the kill must win
        if only_hang_left.wait(240):
            deadline = time.time() + 60
            while not _kill_ray_task_workers() and time.time() < deadline:
                time.sleep(0.2)

    threading.Thread(target=killer, daemon=True).start()
    # Hang's time limit only bounds the test if the kill fails: it must not beat the killer to it.
    rows = run_cases(cases, MeasureOptions(metrics=("flops",)), launcher=_launcher(Limits(timeout_s=360)),
                     output=tmp_path / "lost.csv", on_row=count).rows
    status = {(r["method"].removeprefix("tests.sweep_faults:"), r["seq_len"]): r["status"] for r in rows}
    assert status[("Hang", 32)] == "crashed" and len(rows) == 3
    crashed = next(r for r in rows if r["status"] == "crashed")
    assert "Ray task failed" in crashed["status_detail"]


def test_resume_after_the_driver_is_interrupted_runs_only_the_missing_cases(cluster, tmp_path):
    out = tmp_path / "resume.csv"
    cases = make_cases(["full", "linear", "skyformer"], [64], heads=1, head_dim=8, threads=1)
    options = MeasureOptions(metrics=("flops",))

    seen = []

    def interrupt_after_two(row):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    first = run_cases(cases, options, launcher=_launcher(), output=out, on_row=interrupt_after_two)
    assert first.interrupted and len(first.rows) == 2
    rest = run_cases(cases, options, launcher=_launcher(), output=out, resume=True)
    assert len(rest.rows) == 1 and not rest.interrupted
    import csv

    with open(out, newline="") as f:
        keys = [(r["method"], r["seq_len"]) for r in csv.DictReader(f)]
    assert len(keys) == 3 and len(set(keys)) == 3
