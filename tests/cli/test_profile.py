"""attnbench profile: a row per case and per stage, traces that hold the stages, a figure, a report
the other commands read, and one-line errors."""

import json

import pandas as pd
import pytest

from attnbench.execute.engine import run_cases
from attnbench.plan.case import MeasureOptions, make_cases
from attnbench.results.report import load
from tests.conftest import QUICK, cli


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile")
    out, traces = folder / "p.csv", folder / "traces"
    result = cli("profile", "-m", "skyformer,full-explicit", "-n", "256", "--trace", str(traces),
                 "--profile-calls", "2", "-o", str(out), *QUICK)
    return result, out, traces


def test_profile_writes_a_row_per_case_and_per_stage_whose_flops_sum_to_the_count(profiled):
    result, out, _ = profiled
    assert result.returncode == 0, result.stderr
    rows = load(out).rows
    cases = [r for r in rows if not r["stage"]]
    assert len(cases) == 2 and all(r["status"] == "ok" for r in rows)
    for case in cases:
        stages = [r for r in rows if r["stage"] and r.case.seq_len == case["seq_len"] and r["method"] == case["method"]]
        names = [r["stage"] for r in stages]
        assert names[-1] == "other" and set(names[:-1]) == set(case.case.instance().stages)
        assert sum(r["profile_flops"] for r in stages) == case["flops"] == case["profile_flops"]
        assert sum(r["profile_ms"] for r in stages) == pytest.approx(case["profile_ms"], rel=1e-6)
        assert case["time_ms_median"] > 0 and 0 < case["profile_covered"] <= 1
    assert "pseudo-inverse" in result.stderr + result.stdout and "profiled call" in result.stderr + result.stdout


def test_each_trace_loads_and_holds_every_stage_as_an_event(profiled):
    _, out, traces = profiled
    files = sorted(traces.glob("*.json"))
    assert len(files) == 2
    stages = {r["stage"] for r in load(out).rows if r["method"] == "skyformer" and r["stage"] not in (None, "other")}
    names = {event.get("name") for event in json.loads(next(f for f in files if "skyformer" in f.name).read_text())
             ["traceEvents"]}
    assert stages <= names and "attnbench: call" in names


def test_plot_compare_and_history_read_a_profile(profiled, tmp_path):
    _, out, _ = profiled
    plotted = cli("plot", str(out), "-o", str(tmp_path), "--format", "png")
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / f"{out.stem}-stages.png").stat().st_size > 0
    rows = load(out).rows
    compared = cli("compare", str(out), str(out))
    assert compared.returncode == 0 and f"{len(rows)} unchanged" in compared.stdout, compared.stderr
    frame = pd.read_csv(out)  # the pseudo-inverse of one case twice as slow: compare names that stage
    slower = (frame["stage"] == "pseudo-inverse") & (frame["seq_len"] == 256)
    frame.loc[slower, "profile_ms"] *= 2
    frame.to_csv(tmp_path / "slower.csv", index=False)
    judged = cli("compare", str(out), str(tmp_path / "slower.csv"), "--metrics", "profile")
    assert judged.returncode == 1 and "stage=pseudo-inverse n=256" in judged.stdout, judged.stdout
    history = cli("history", str(out), str(tmp_path / "slower.csv"), "--metrics", "profile",
                  "-o", str(tmp_path / "history.csv"))
    assert history.returncode == 0, history.stderr


def test_a_trace_folder_is_never_overwritten_and_bad_input_is_one_line(profiled, tmp_path):
    _, out, traces = profiled
    again = cli("profile", "-m", "skyformer", "-n", "256", "--trace", str(traces), "-o", str(tmp_path / "a.csv"),
                *QUICK)
    assert again.returncode != 0 and "already holds" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    a_file = tmp_path / "file"
    a_file.write_text("")
    for args, message in ((["--trace", str(a_file)], "is a file"), (["-m", "skyfromer"], "unknown method"),
                          (["--mode", "sideways"], "sideways")):
        bad = cli("profile", *(["-m", "skyformer"] if "-m" not in args else []), "-n", "128", *args,
                  "-o", str(tmp_path / "b.csv"))
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    unused = cli("run", "-m", "full", "-n", "128", "--trace", str(tmp_path / "t"), "-o", str(tmp_path / "c.csv"))
    assert unused.returncode != 0 and "add profile to --metrics" in unused.stderr
    swapped = cli("swap", "--model", "minilm", "--metrics", "profile")
    assert swapped.returncode != 0 and len(swapped.stderr.strip().splitlines()) == 1


def test_at_layer_scope_the_methods_stages_nest_under_the_layer_in_a_backward():
    cases = make_cases(["skyformer"], [128], heads=2, head_dim=16, scope="layer", mode="backward", threads=1)
    outcome = run_cases(cases, MeasureOptions(metrics=("flops", "profile"), settings=(("profile_calls", 1),)))
    (case,), stages = outcome.rows, outcome.stage_rows
    names = [r["stage"] for r in stages]
    assert {"layer/attention/pseudo-inverse", "layer/feed-forward", "layer/projections", "layer/norms"} <= set(names)
    assert sum(r["profile_flops"] for r in stages) == case["flops"]
    assert next(r for r in stages if r["stage"] == "layer/attention/pseudo-inverse")["profile_flops"] > 0
