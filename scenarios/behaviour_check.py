"""What users see, recorded so that two revisions can be diffed: every bundled scenario's dry run,
`compare` of every committed report against itself, and the one-line messages of bad input.

    python scenarios/behaviour_check.py OUT.txt                               # this checkout
    git worktree add /tmp/old REV
    python scenarios/behaviour_check.py OLD.txt --code /tmp/old               # REV's code
    diff OLD.txt OUT.txt

Each command runs in this process through attnbench.cli.main (as `attnbench ARGS` would), from
the folder of this checkout, so the reports and scenarios are the same for both revisions; only
the code differs (`--code`: put first on the path, ahead of an editable install's finder).
Paths of temporary files are written as TMP.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BAD_INPUT = [
    ["run", "-m", "skyformr"], ["run", "-m", "ful"], ["run", "-m", "zz*"], ["run", "-n", "0"], ["run", "-n", "long"],
    ["run", "-p", "features=64"], ["run", "-p", "features"], ["run", "--heads", "0"], ["run", "--metrics", "speed"],
    ["run", "--dtype", "int4"], ["run", "--mode", "sideways"], ["run", "--reference", "fulll"], ["run", "--bogus"],
    ["run", "--scope", "galaxy"], ["run", "--kv-heads", "3"], ["run", "--compile-mode", "fast"],
    ["run", "--allocator", "jemalloc"], ["run", "--min-time", "-1"], ["run", "-m", "bigbird", "-n", "100", "--dry-run"],
    ["sweep", "no-such-scenario"], ["sweep", "{tmp}/bad.toml", "--dry-run"], ["sweep", "ci", "--jobs", "0"],
    ["plot", "no/such.csv"], ["plot", "{tmp}/garbage.csv"], ["summary", "{tmp}/garbage.csv"],
    ["compare", "a.csv", "b.csv", "--tolerance", "time"], ["compare", "{tmp}/garbage.csv", "{tmp}/garbage.csv"],
    ["show-pattern", "-m", "nosuch", "-n", "64"], ["show-pattern", "-m", "bigbird", "-n", "0"],
    ["swap", "--method", "nosuch"], ["capture", "--layers", "x"], ["history", "a.csv", "-o", "{tmp}/h.csv"],
    ["html", "-o", "{tmp}/site"], ["frobnicate"],
]


def call(argv: list[str]) -> tuple[int, str, str]:
    from attnbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def record(argv: list[str], tmp: str, lines: int = 400) -> str:
    code, out, err = call(argv)
    shown = " ".join(argv).replace(tmp, "TMP")
    body = "\n".join((out + err).replace(tmp, "TMP").splitlines()[:lines])
    return f"$ attnbench {shown}\n[exit {code}]\n{body}\n"


def use_code(folder: str) -> None:
    """Import attnbench from `folder`: an editable install's finder comes before sys.path, so it goes."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                        and "editable" not in getattr(f, "__name__", "").lower()]
    sys.path.insert(0, folder)


def main() -> None:
    target = Path(sys.argv[1]).resolve()
    if "--code" in sys.argv:
        use_code(sys.argv[sys.argv.index("--code") + 1])
    import attnbench

    print(f"attnbench from {Path(attnbench.__file__).parent}")
    os.chdir(ROOT)
    os.environ["COLUMNS"] = "200"  # rich tables the same width for both revisions
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bad.toml").write_text("[grid\nmethods = 3\n")
        Path(tmp, "garbage.csv").write_bytes(b"\xff\xfe not a report")
        sections.append("# bad input")
        sections += [record([a.format(tmp=tmp) for a in argv], tmp) for argv in BAD_INPUT]
        sections.append("# every bundled scenario's dry run")
        sections += [record(["sweep", str(p.relative_to(ROOT)), "--dry-run"], tmp)
                     for p in sorted((ROOT / "scenarios").glob("*.toml"))]
        sections.append("# compare: every committed report against itself")
        reports = sorted([*(ROOT / "reports" / "measured").rglob("*.csv"),
                          *(ROOT / "reports" / "baselines").glob("*.csv")])
        sections += [record(["compare", str(p.relative_to(ROOT)), str(p.relative_to(ROOT))], tmp, lines=60)
                     for p in reports]
    target.write_text("\n".join(sections))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
