"""Users' own methods: docs/extending.md's worked example, run as `module:attribute` and as an entry point."""

import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

import attnbench
from attnbench.methods.registry import REGISTRY
from tests.conftest import cli

README = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def example_module() -> str:
    """docs/extending.md's my_attention.py, verbatim."""
    blocks = re.findall(r"```python\n(# my_attention\.py\n.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/extending.md must hold exactly one my_attention.py example"
    return blocks[0]


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """tmp_path on sys.path (as PYTHONPATH would put it), and the registry, modules and path as
    they were afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(REGISTRY)
    yield tmp_path
    for name in set(REGISTRY) - before:
        del REGISTRY[name]
    for module in ("my_attention", "not_a_method"):
        sys.modules.pop(module, None)


QUICK = ["-n", "64", "--heads", "2", "--head-dim", "16", "--min-time", "0.02", "--max-time", "0.1", "--threads", "1"]


@pytest.mark.slow
def test_readme_example_runs_by_module_and_attribute(on_path):
    import subprocess

    (on_path / "my_attention.py").write_text(example_module())
    git = ["git", "-C", str(on_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "my_attention.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "mine"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = cli("run", "-m", "my_attention:CosineAttention,full", "-p", "temperature=5,20",
                           "-o", "-", *QUICK)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    mine = frame[frame["method"] == "my_attention:CosineAttention"]
    assert sorted(mine["param_temperature"]) == [5.0, 20.0] and (frame["status"] == "ok").all()
    assert (mine["flops"] == mine["flops_analytic"]).all()
    # whose code was measured: the plugin's file and the commit of its work tree, beside attnbench's
    assert mine["method_source"].str.endswith("my_attention.py").all() and (mine["method_git_sha"] == commit).all()
    assert frame.loc[frame["method"] == "full", "method_version"].iloc[0] == attnbench.__version__


def test_readme_example_registers_through_an_entry_point(on_path):
    (on_path / "my_attention.py").write_text(example_module())
    dist = on_path / "my_attention-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-attention\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[attnbench.methods]\ncosine = my_attention:CosineAttention\n")
    (dist / "top_level.txt").write_text("my_attention\n")
    listed = cli("list", "cos*")
    assert listed.returncode == 0 and "cosine" in listed.stdout and "temperature" in listed.stdout
    result = cli("run", "-m", "cosine", "-o", "-", *QUICK)
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(io.StringIO(result.stdout)).iloc[0]
    assert row["status"] == "ok" and str(row["method_version"]) == "0.1"  # the plugin package's version


def test_bad_references_are_one_line_errors(on_path):
    (on_path / "not_a_method.py").write_text("def thing():\n    return 42\n")
    for name, message in (("no_such_module:X", "cannot load method"), ("not_a_method:missing", "cannot load method"),
                          ("not_a_method:thing", "is not a method")):
        result = cli("run", "-m", name, *QUICK)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr
