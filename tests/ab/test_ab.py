"""attnbench ab: two revisions of a temporary clone, one with a deliberate slowdown of one method
(20 ms added to each call: 4x or more at n = 1k), timed interleaved in one job. The tool's power at
1.5x is measured by scenarios/timing_aa.py --mode ab on a quiet machine; this test must pass on a
loaded one."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("ab")  # one clone for the module, in one worker
SLOWDOWN = '''

import time as _time  # a deliberate slowdown, for attnbench ab's test: every call 20 ms longer (4x or more)

_build = Linear.build


def _slow_build(self, shape, **kwargs):
    fn = _build(self, shape, **kwargs)

    def slow(q, k, v):
        out = fn(q, k, v)
        _time.sleep(0.02)  # fixed, and far above the call: a loaded machine's noise cannot hide it
        return out
    return slow


Linear.build = _slow_build
'''


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A clone of this repository's HEAD with one more commit that slows `linear` 4x or more."""
    clone = tmp_path_factory.mktemp("ab") / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for key, value in (("user.email", "ab@test"), ("user.name", "ab test")):
        _git(clone, "config", key, value)
    with (clone / "attnbench" / "methods" / "linear.py").open("a") as f:
        f.write(SLOWDOWN)
    _git(clone, "commit", "-qam", "Slow linear down 4x")
    return clone


def ab(repo, *args):
    return subprocess.run([sys.executable, "-m", "attnbench", "ab", *args], cwd=repo, capture_output=True, text=True,
                          timeout=600)


def _ratio(line: str) -> float:
    """The time ratio of a verdict line ('linear n=1k  REGRESSION  slower 3.98x [3.9, 4.1] ...')."""
    words = [w for w in line.split() if w.endswith("x") and w[:-1].replace(".", "").isdigit()]
    return float(words[0][:-1])


@pytest.mark.slow
def test_a_four_times_slower_method_is_confirmed_and_exits_1_even_on_a_loaded_machine(repo, tmp_path):
    out = tmp_path / "ab.csv"
    result = ab(repo, "HEAD~1", "HEAD", "-m", "full,linear", "-n", "1k", "--min-time", "0.05", "--max-time", "0.2",
                "--processes", "2", "-o", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("full ", "linear "))}
    assert "slower" in verdicts["linear"] and _ratio(verdicts["linear"]) > 2.5, verdicts
    # full is unchanged: whatever noise a busy machine adds, it is nowhere near the injected step
    assert "full" not in verdicts or "REGRESSION" not in verdicts["full"] or _ratio(verdicts["full"]) < 2, verdicts
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and {r["time_processes"] for r in rows} == {"2"}
    shas = {r["revision"]: r["git_sha"] for r in rows}
    assert len(shas) == 2 and all(label.split("(")[1].rstrip(")") == sha[:12] for label, sha in shas.items())
    assert (tmp_path / "ab.sides" / "verdicts.md").read_text().count("|") > 4
    assert sorted(p.name for p in (tmp_path / "ab.sides").glob("round-*.csv")) == [
        f"round-0{i}-{side}.csv" for i in range(1, 3) for side in ("base", "head")]


@pytest.mark.slow
def test_a_revision_without_ab_side_runs_each_round_as_a_sweep_of_its_own(tmp_path):
    from attnbench.ab.interleave import Server, Side, run_round

    old = tmp_path / "old"
    (old / "attnbench").mkdir(parents=True)
    (old / "attnbench" / "__init__.py").write_text("")
    (old / "attnbench" / "ab.py").write_text('"""ab as it was before ab_side."""\n')
    assert Server.start(Side("base", "old", sys.executable, old, tmp_path), [], tmp_path / "old.log") is None
    assert not (tmp_path / "old.log").exists()
    target = tmp_path / "round.csv"
    run_round(Side("base", "this", sys.executable, ROOT, ROOT),
              ["-m", "full", "-n", "64", "--metrics", "time", "--min-time", "0.01", "--max-time", "0.05"], target)
    rows = list(csv.DictReader(target.open()))
    assert [(r["method"], r["status"]) for r in rows] == [("full", "ok")]


def test_a_sides_environment_is_that_of_the_grids_allocator_policy():
    from attnbench.ab.interleave import Side, _environment

    side = Side("base", "this", sys.executable, ROOT, ROOT)
    # a round whose policy differs from its process's would restart itself, cutting a server off
    system, default = _environment(side, ["-m", "full", "--allocator", "system"]), _environment(side, ["-m", "full"])
    assert system["ATTNBENCH_ALLOCATOR"] == "system" and "MALLOC_MMAP_THRESHOLD_" not in system
    assert default["ATTNBENCH_ALLOCATOR"] == "cache" and "MALLOC_MMAP_THRESHOLD_" in default
    assert system["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)


def _one_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


@pytest.mark.slow
def test_bad_revisions_a_dirty_base_and_an_existing_report_are_one_line_errors(repo, tmp_path):
    assert "unknown revision 'nope'" in _one_error(ab(repo, "nope", "-m", "full", "-n", "128"))
    taken = tmp_path / "taken.csv"
    taken.write_text("method\nfull\n")
    assert "already exists; remove it or choose another -o" in _one_error(
        ab(repo, "HEAD~1", "HEAD", "-m", "full", "-n", "128", "-o", str(taken)))
    assert taken.read_text() == "method\nfull\n"
    (repo / "README.md").write_text("edited\n")
    try:
        assert "uncommitted changes" in _one_error(ab(repo, ".", "HEAD", "-m", "full", "-n", "128"))
    finally:
        _git(repo, "checkout", "README.md")
    assert "give the grid" in _one_error(ab(repo, "HEAD~1", "HEAD"))
    failed = ab(repo, "HEAD~1", "HEAD", "-m", "fulll", "-n", "128", "-o", str(tmp_path / "bad.csv"))
    last = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == 1 and last.startswith("Error: the base side (HEAD~1 (")
    assert "unknown method 'fulll'" in last
