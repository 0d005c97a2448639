"""Interleaved A/B of two revisions of the code under test, in one job.

`attnbench ab BASE [HEAD] GRID -o ab.csv` checks each revision out into its own git worktree
(kept under the repository's git folder, `attnbench-ab/<sha>`, so a commit is checked out once)
and runs it with this environment's Python and packages, its own attnbench first on the path
(HEAD defaults to the working tree as it is). Two installed environments can be given instead
(`--base-python`, `--head-python`: each runs the attnbench installed there).

The cases then run interleaved: round 1 runs every case once in BASE, then in HEAD; round 2 in
the opposite order; and so on for `processes` rounds, each round a `sweep --processes 1` (every
case in a fresh worker), so drift of the machine falls on both sides alike. A side's rounds run
in one process of its own code (`attnbench.ab_side`), which imports torch, starts the workers'
template and measures the GEMM rate once, not once per round; a revision without it (older
code) runs each round as a `sweep` process of its own. Each side's rounds are merged per case
(the time metric's `combine`: the row gets every process's samples), both sides go into the
one report `ab.csv` with a `revision` identity column, and compare judges HEAD's rows against
BASE's with its usual states and exit codes (`<ab>.sides/verdicts.md`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from attnbench.errors import AttnbenchError

WORKTREE = "working tree"


@dataclass(frozen=True)
class Side:
    name: str  # base or head
    label: str  # what the revision column says: the revision as given and its commit
    python: str
    path: Path | None  # the source to put first on the path (None: the environment's own attnbench)
    cwd: Path


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def repository(where: Path | None = None) -> Path:
    found = _git(where or Path.cwd(), "rev-parse", "--show-toplevel")
    if found.returncode:
        raise AttnbenchError("attnbench ab checks out revisions of a git repository: run it inside one, or give "
                             "--base-python and --head-python")
    return Path(found.stdout.strip())


def resolve(repo: Path, revision: str) -> str | None:
    """The commit a revision names, or None."""
    found = _git(repo, "rev-parse", "--verify", "-q", f"{revision}^{{commit}}")
    return found.stdout.strip() if found.returncode == 0 else None


def _dirty(tree: Path) -> bool:
    return bool(_git(tree, "status", "--porcelain", "--untracked-files=no").stdout.strip())


def checkout(repo: Path, sha: str) -> Path:
    """A worktree of the commit, made once and reused; one with local edits is refused."""
    common = Path(_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip())
    tree = common / "attnbench-ab" / sha
    if not (tree / ".git").exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        made = _git(repo, "worktree", "add", "--detach", str(tree), sha)
        if made.returncode:
            raise AttnbenchError(f"cannot check out {sha[:12]}: {made.stderr.strip().splitlines()[-1]}")
    elif _dirty(tree):
        raise AttnbenchError(f"the cached worktree of {sha[:12]} ({tree}) has local edits: remove it with git worktree "
                             "remove --force and run again")
    return tree


def sides(base: str | None, head: str | None, base_python: str | None, head_python: str | None) -> list[Side]:
    """BASE and HEAD as they will run; one-line errors for an unknown revision or a dirty BASE."""
    if base_python or head_python:
        if not (base_python and head_python) or base or head:
            raise AttnbenchError("give either two revisions (BASE [HEAD]) or both --base-python and --head-python")
        for python in (base_python, head_python):
            if not Path(python).is_file():
                raise AttnbenchError(f"--base-python/--head-python {python} does not exist")
        return [Side("base", base_python, base_python, None, Path.cwd()),
                Side("head", head_python, head_python, None, Path.cwd())]
    if base is None:
        raise AttnbenchError("give BASE, the revision to compare against (e.g. HEAD~1 or main)")
    repo = repository()
    out = []
    for name, revision in (("base", base), ("head", head)):
        if revision is None:  # HEAD: the working tree as it is, edits included
            sha = resolve(repo, "HEAD") or ""
            dirty = "+dirty" if _dirty(repo) else ""
            out.append(Side(name, f"{WORKTREE} ({sha[:12]}{dirty})", sys.executable, repo, repo))
            continue
        if revision == ".":
            if _dirty(repo):
                raise AttnbenchError("BASE is the working tree, which has uncommitted changes: BASE must be a "
                                     "commit; commit or stash them, or name a revision")
            revision = "HEAD"
        sha = resolve(repo, revision)
        if sha is None:
            raise AttnbenchError(f"unknown revision {revision!r}: give a commit, branch or tag of {repo}")
        tree = checkout(repo, sha)
        out.append(Side(name, f"{revision} ({sha[:12]})", sys.executable, tree, tree))
    return out


def _policy(grid: Sequence[str]) -> str:
    """The allocator policy the grid's rounds run under: its --allocator, else the default."""
    from attnbench.measure.machine import allocator

    for i, token in enumerate(grid):
        if token == "--allocator" and i + 1 < len(grid):
            return grid[i + 1]
        if token.startswith("--allocator="):
            return token.split("=", 1)[1]
    return allocator.DEFAULT


def _environment(side: Side, grid: Sequence[str]) -> dict:
    from attnbench.measure.machine import allocator

    # the environment of the rounds' allocator policy: a round's sweep then starts without restarting
    # itself (a restart would also cut a server off from the round it was given)
    env = {**allocator.environment(_policy(grid)), "PYTHONWARNINGS": "ignore"}
    if side.path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(side.path), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _round_arguments(grid: Sequence[str], target: Path) -> list[str]:
    return ["sweep", *grid, "--processes", "1", "--quiet", "-o", str(target)]


def _failed(side: Side, output: str) -> AttnbenchError:
    lines = [line for line in output.strip().splitlines() if line.strip()] or ["no output"]
    errors = [line for line in lines if line.startswith("Error:")]
    return AttnbenchError(f"the {side.name} side ({side.label}) failed: {(errors or lines)[-1]}")


def run_round(side: Side, grid: Sequence[str], target: Path) -> None:
    """One process of every case, for one side, as a sweep process of its own (each case in a fresh worker)."""
    command = [side.python, "-m", "attnbench", *_round_arguments(grid, target)]
    done = subprocess.run(command, cwd=side.cwd, env=_environment(side, grid), capture_output=True, text=True)
    if done.returncode != 0 or not target.is_file():
        raise _failed(side, done.stderr.strip() or done.stdout)


class Server:
    """The long-lived process that runs one side's rounds (attnbench.ab_side); its output goes to `log`."""

    def __init__(self, side: Side, process: subprocess.Popen, replies, log: Path) -> None:
        self.side, self.process, self.replies, self.log = side, process, replies, log

    @classmethod
    def start(cls, side: Side, grid: Sequence[str], log: Path) -> Server | None:
        """The side's server, or None when its attnbench has no `ab_side` (a revision older than it)."""
        read_fd, write_fd = os.pipe()
        with log.open("w") as out:
            process = subprocess.Popen(
                [side.python, "-c", "import sys; from attnbench.ab_side import serve; serve(int(sys.argv[1]))",
                 str(write_fd)], cwd=side.cwd, env=_environment(side, grid), stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.STDOUT, pass_fds=(write_fd,), text=True)
        os.close(write_fd)
        replies = os.fdopen(read_fd)
        if replies.readline().strip() != "ready":  # it ended: no attnbench.ab_side in this code
            process.wait()
            replies.close()
            log.unlink()  # the ImportError, which says nothing the caller does not
            return None
        return cls(side, process, replies, log)

    def run_round(self, grid: Sequence[str], target: Path) -> None:
        try:
            self.process.stdin.write(json.dumps(_round_arguments(grid, target)) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:  # the server ended after its last round
            raise _failed(self.side, self.log.read_text()) from None
        reply = self.replies.readline().strip()
        if reply != "0" or not target.is_file():
            raise _failed(self.side, self.log.read_text())

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.replies.close()


def split_arguments(given: list[str], revisions: bool = True) -> tuple[list[str], list[str]]:
    """`ab`'s arguments: BASE [HEAD] (git revisions, when `revisions`), then a scenario and the grid
    as run's options; returns (the revisions, the sweep arguments, `--metrics time` unless given)."""
    from attnbench.plan.scenario import resolve_scenario

    leading, grid = [], []
    for i, token in enumerate(given):
        if token.startswith("-"):
            grid = given[i:]
            break
        leading.append(token)
    chosen, scenario = [], []
    repo = repository() if revisions else None
    for token in leading:
        if repo is not None and len(chosen) < 2 and not scenario and (token == "." or resolve(repo, token)):
            chosen.append(token)
        elif not scenario and (Path(token).is_file() or _bundled(resolve_scenario, token)):
            scenario.append(str(Path(token).resolve()) if Path(token).is_file() else token)
        else:
            raise AttnbenchError(f"unknown revision {token!r}: give a commit, branch or tag (BASE [HEAD]), then a "
                                 "scenario or the grid as options")
    if not scenario and "-m" not in grid and "--method" not in grid:
        raise AttnbenchError("give the grid: a scenario, or -m METHODS and -n LENGTHS as for run")
    if "--metrics" not in grid:
        grid += ["--metrics", "time"]
    return chosen, [*scenario, *grid]


def _bundled(resolve_scenario, token: str) -> bool:
    try:
        resolve_scenario(token)
    except AttnbenchError:
        return False
    return True


def merge(rounds: list[Path]) -> list:
    """A side's rounds as one row per case: the first round's row with every round's time samples."""
    from attnbench.metrics import combine_processes
    from attnbench.results.report import load

    by_case: dict = {}
    for path in rounds:
        for row in load(path, say=lambda line: None).rows:
            by_case.setdefault(row.case, []).append(row)
    merged = []
    for rows in by_case.values():
        first, later = rows[0], [r for r in rows[1:] if r["status"] == "ok"]
        merged.append(combine_processes(first, later) if first["status"] == "ok" and later else first)
    return merged


def ab(base: str | None, head: str | None, grid: Sequence[str], output: str | Path, *, processes: int = 5,
       base_python: str | None = None, head_python: str | None = None,
       on_round: Callable[[int, str], None] = lambda index, side: None, say: Callable[[str], None] = lambda line: None):
    """Run the interleaved A/B; returns the compare result and the folder of the rounds (and verdicts.md)."""
    from attnbench.judge.compare import compare_rows
    from attnbench.results.report import check_target, refuse_to_replace
    from attnbench.results.schema import Row, columns_for
    from attnbench.views.render import comparison_lines

    output = Path(output).resolve()  # the sides run in their own worktrees
    check_target(output, append=False, can_append=False)
    folder = output.with_name(output.name.removesuffix(".csv") + ".sides")
    refuse_to_replace([folder], "remove it or choose another -o", why=" (an earlier A/B's rounds)")
    if processes < 1:
        raise AttnbenchError(f"--processes must be at least 1, not {processes}")
    chosen = sides(base, head, base_python, head_python)
    folder.mkdir(parents=True)
    rounds: dict[str, list[Path]] = {"base": [], "head": []}
    servers: dict[str, Server | None] = {}
    try:
        for side in chosen:
            servers[side.name] = Server.start(side, grid, folder / f"{side.name}.log")
            if servers[side.name] is None:
                say(f"the {side.name} side ({side.label}) has no attnbench.ab_side (older code): each of its rounds "
                    "is a sweep process of its own")
        for index in range(processes):
            order = chosen if index % 2 == 0 else chosen[::-1]  # drift falls on both sides alike
            for side in order:
                on_round(index, side.name)
                target = folder / f"round-{index + 1:02d}-{side.name}.csv"
                if servers[side.name]:
                    servers[side.name].run_round(grid, target)
                else:
                    run_round(side, grid, target)
                rounds[side.name].append(target)
    finally:
        for server in filter(None, servers.values()):
            server.close()
    merged = {side.name: merge(rounds[side.name]) for side in chosen}
    labels = {side.name: side.label for side in chosen}
    if len(set(labels.values())) < len(labels):  # an A/A run: one revision on both sides, told apart by side
        labels = {name: f"{name}: {label}" for name, label in labels.items()}
    both = [Row({**row, "revision": labels[name]}, samples=row.samples) for name in ("base", "head")
            for row in merged[name]]
    write_rows(output, both, columns_for([r.case for r in both]))
    result = compare_rows(merged["base"], merged["head"], ["time"], names=("base", "head"), allow_disjoint=True)
    (folder / "verdicts.md").write_text("\n".join(comparison_lines(result, ("time",), markdown=True)) + "\n")
    return result, folder


def write_rows(path: Path, rows: list, columns: list[str]) -> None:
    """A report of these rows (and their samples), with `columns` and any others the rows have."""
    from attnbench.results.report import CsvReport

    extra = [c for r in rows for c in r if c not in columns]
    with CsvReport(path, [*columns, *dict.fromkeys(extra)]) as report:
        for row in rows:
            report.write(row)
