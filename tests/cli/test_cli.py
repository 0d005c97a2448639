"""The command line as users see it: one-line errors, exit codes, reports, tables. Most tests
run the CLI in this process (tests.conftest.cli); a few run it as a subprocess, for what only a
real process shows (start-up time, the allocator restart)."""

import io
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import QUICK, cli, run_cli


@pytest.mark.slow
def test_help_and_bad_method_do_not_import_torch_or_restart():
    """What keeps `--help` and a bad method name fast (scenarios/startup_costs.py measures it): no
    torch import, no allocator restart (a restart would replace the process before 'done')."""
    # attnbench.execute.workers too: a sweep starts the workers' template before this process imports torch
    probe = ("import sys; from attnbench.cli import app; import attnbench.execute.workers; "
             "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", probe], check=True)
    for argv, code in ((["--help"], 0), (["run", "-m", "nosuch", "-n", "512"], 1)):
        script = ("import sys\nfrom attnbench.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
                  "    assert e.code == %d, e.code\n"
                  "assert 'torch' not in sys.modules, 'torch imported'\nprint('done')" % code)
        result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.rstrip().endswith("done"), result.stdout + result.stderr
    result = run_cli("run", "-m", "nosuch", "-n", "512")
    assert result.returncode == 1 and result.stderr.startswith("Error: unknown method 'nosuch'")


def test_version():
    from attnbench import __version__

    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"attnbench {__version__}"


@pytest.mark.parametrize("args, message", [
    (["run", "-m", "skyformr"], "unknown method 'skyformr'"),
    (["run", "-m", "ful"], "did you mean full"),
    (["run", "-m", "zz*"], "no method matches 'zz*'"),
    (["run", "-n", "0"], "--seq must be a positive whole number"),
    (["run", "-n", "-512"], "--seq must be a positive whole number"),
    (["run", "-n", "long"], "--seq must be a positive whole number"),
    (["run", "-p", "features=64"], "no selected method has a parameter 'features'"),
    (["run", "-p", "features"], "-p/--param takes NAME=V1,V2"),
    (["run", "--device", "cuda"], "no CUDA device is visible"),
    (["run", "--heads", "0"], "--heads"),
    (["run", "--metrics", "speed"], "--metrics takes names from"),
    (["run", "--dtype", "int4"], "unknown dtype 'int4'"),
    (["run", "--mode", "sideways"], "--mode must be forward, backward or train"),
    (["run", "--reference", "fulll"], "unknown method 'fulll'"),
    (["run", "--bogus"], "No such option"),
    (["plot", "no/such.csv"], "does not exist"),
    (["compare", "a.csv", "b.csv", "--tolerance", "time"], "--tolerance takes METRIC=NUMBER"),
    (["frobnicate"], "No such command"),
])
def test_bad_input_is_one_line_and_non_zero(args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = cli(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_exit_codes_of_a_real_process():
    bad_option = run_cli("run", "--bogus")
    assert bad_option.returncode == 2 and bad_option.stderr.count("\n") == 1
    bad_value = run_cli("run", "-n", "0")
    assert bad_value.returncode == 1 and bad_value.stderr.startswith("Error: --seq")


@pytest.mark.slow
def test_run_writes_a_report_and_refuses_to_overwrite_it(tmp_path):
    out = tmp_path / "r.csv"
    result = cli("run", "-m", "full,full-explicit", "-n", "64,128", "-o", str(out), *QUICK)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 4 and (frame["status"] == "ok").all()
    assert "full-explicit" in result.stdout and f"wrote 4 row(s) to {out}" in result.stdout
    before = out.read_bytes()
    again = cli("run", "-n", "64", "-o", str(out), *QUICK)
    assert again.returncode == 1 and "already exists" in again.stderr and out.read_bytes() == before
    appended = cli("run", "-n", "32", "-o", str(out), "--append", *QUICK)
    assert appended.returncode == 0 and len(pd.read_csv(out)) == 5


@pytest.mark.slow
def test_csv_to_stdout_keeps_the_table_on_stderr():
    result = cli("run", "-n", "64", "--mode", "backward", "-o", "-", "--metrics", "flops,memory", *QUICK)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert frame.loc[0, "mode"] == "backward" and frame.loc[0, "status"] == "ok"
    assert "FLOPs" in result.stderr and "peak mem" in result.stderr


@pytest.mark.slow
def test_csv_to_a_closed_pipe_ends_quietly_with_sigpipe_s_status():
    """`attnbench run -o - | head -1`: the reader leaves after the header; no error, no traceback."""
    import os

    argv = ["run", "-m", "full,linear", "-n", "32,64", "-o", "-", "--metrics", "flops", "--allocator", "system", *QUICK]
    process = subprocess.Popen([sys.executable, "-m", "attnbench", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert process.stdout.readline().startswith(b"method,")
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and "Error" not in stderr and "Traceback" not in stderr, stderr


def test_list_and_info():
    listed = cli("list")
    assert listed.returncode == 0 and "full-explicit" in listed.stdout and "Vaswani" in listed.stdout
    assert "…" not in listed.stdout and "..." not in listed.stdout  # wrapped, never cut
    import re

    words = set(re.findall(r"[\w.:]+", cli("list", "smartbird").stdout))
    assert {"inverse_log_sq", "inverse_log", "raw", "topk", "random"} <= words
    assert {"0.0:", "initialised,", "quarter"} <= set(re.findall(r"[\w.:,]+", cli("list", "sbm").stdout))
    info = cli("info")
    assert info.returncode == 0 and "torch_version" in info.stdout and "gpu_name" in info.stdout


def test_help_keeps_bracketed_words_and_shows_defaults():
    result = cli("run", "--help")
    text = " ".join(result.stdout.replace("│", " ").split())  # the help's box drawn away, lines joined
    assert "attnbench[pretrained]" in text.replace(" ", "")
    for default in ("[default: 4]", "[default: torch's]", "[default: float32 on CPU, bfloat16 on CUDA]"):
        assert default in text
    flags = [line for line in cli("sweep", "--help").stdout.splitlines() if "<bool>" in line]
    assert all("--help" in line for line in flags), flags  # flags take no value (Typer's own --help aside)


@pytest.mark.slow
def test_plot_draws_log_log_efficiency_curves(small_report, tmp_path):
    from attnbench.views.plot import efficiency_figure, plot_report

    result = cli("plot", str(small_report), "-o", str(tmp_path / "figs"))
    assert result.returncode == 0, result.stderr
    for ext in ("png", "svg"):
        assert (tmp_path / "figs" / f"small-efficiency.{ext}").stat().st_size > 1000
    frame = pd.read_csv(small_report)
    frame.loc[frame["seq_len"] == 256, "status"] = "oom"  # a failure ends the line, not a zero
    fig = efficiency_figure(frame)
    time_ax = fig.axes[0]
    assert time_ax.get_xscale() == "log" and time_ax.get_yscale() == "log"
    assert "time" in time_ax.get_ylabel() and time_ax.get_xlabel() == "sequence length n"
    curves = {line.get_label(): list(line.get_xdata()) for line in time_ax.lines  # not guides, not noisy markers
              if "guide" not in line.get_label() and not line.get_label().startswith("_")}
    assert curves == {"full": [128], "full-explicit": [128], "skyformer": [128]}
    assert plot_report(frame, tmp_path, "again")[0].exists()


def test_plot_keeps_methods_whose_parameter_columns_are_blank():
    from attnbench.views.plot import efficiency_figure

    frame = pd.DataFrame({"method": ["full", "full", "toy", "toy", "toy", "toy"], "seq_len": [64, 128] * 3,
                          "param_a": [None, None, 1.0, 1.0, 2.0, 2.0], "status": "ok", "mode": "forward",
                          "time_ms_median": [1.0, 2.0, 1.0, 1.5, 1.2, 1.8], "time_ms_iqr": 0.1,
                          "peak_mem_bytes": 100.0, "flops": 1e6})
    labels = {line.get_label() for line in efficiency_figure(frame).axes[0].lines}
    assert {"full", "toy a=1", "toy a=2"} <= labels


@pytest.mark.slow
def test_allocator_policy_is_applied_and_recorded():
    default = run_cli("run", "-n", "64", "-o", "-", "--metrics", "flops", *QUICK)  # restarts itself
    system = cli("run", "-n", "64", "-o", "-", "--metrics", "flops", "--allocator", "system", *QUICK)
    rows = [pd.read_csv(io.StringIO(r.stdout)).iloc[0] for r in (default, system)]
    assert rows[0]["allocator"] == "cache" and "MALLOC_MMAP_THRESHOLD_=4294967296" in rows[0]["malloc_env"]
    assert rows[1]["allocator"] == "system" and pd.isna(rows[1]["malloc_env"])
    bad = cli("run", "--allocator", "jemalloc")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "Error: --allocator must be one of cache, system, not 'jemalloc'"]


def test_options_mean_the_same_on_every_command(tmp_path):
    listed = cli("run", "-m", "linear", "-n", "64", "--seed", "0,1,2", "--dry-run")
    assert listed.returncode == 0 and listed.stdout.strip().splitlines()[-1].startswith("3 case(s)")
    assert [line.split()[-1] for line in listed.stdout.splitlines()[:3]] == ["seed=0", "seed=1", "seed=2"]
    assert "limits:" not in listed.stdout and "no memory or time limit" in listed.stdout  # run is not capped
    swept = cli("sweep", "-m", "linear", "-n", "64", "--seed", "0,1", "--dry-run")
    assert swept.stdout.strip().splitlines()[-1].startswith("2 case(s)") and "limits: 3 GiB" in swept.stdout
    many = cli("show-pattern", "-m", "bigbird", "-n", "256", "-p", "block_size=16,32")
    lines = many.stderr.strip().splitlines()
    assert many.returncode == 1 and len(lines) == 1 and "block_size=16,32 gives several" in lines[0]
    drawn = cli("show-pattern", "-m", "longformer", "-n", "64", "-p", "window=16", "--heads", "1",
                "-o", str(tmp_path / "pat"))
    assert drawn.returncode == 0 and (tmp_path / "pat.png").is_file()
    assert f"wrote {tmp_path / 'pat.png'}" in drawn.stdout
    exact = cli("show-pattern", "-m", "longformer", "-n", "64", "-p", "window=16", "--heads", "1",
                "-o", str(tmp_path / "pat.svg"))
    assert exact.returncode == 0 and (tmp_path / "pat.svg").is_file()


@pytest.mark.slow
def test_warmup_reaches_the_timer_from_the_command_line_and_a_scenario(tmp_path, monkeypatch):
    """An option declared once in the spec: a flag, a scenario key and the timer's argument."""
    from attnbench.measure import timing

    seen = []
    warm_up = timing.warm_up
    monkeypatch.setattr(timing, "warm_up", lambda call, device, **kw: seen.append(kw) or warm_up(call, device, **kw))
    quick = ["-m", "full", "-n", "64", "--metrics", "time", "--min-time", "0.01", "--max-time", "0.05",
             "--threads", "1"]
    assert cli("run", *quick, "--warmup", "0.3", "-o", str(tmp_path / "a.csv")).returncode == 0
    # the case's warm-up (a first run in this process also measures the machine's GEMM rate, warmed its own way)
    assert {"min_seconds": 0.3} in seen
    scenario = tmp_path / "s.toml"
    scenario.write_text('methods = ["full"]\nseq = 64\nwarmup = 0.2\n')
    from attnbench.plan.scenario import load_scenario

    assert load_scenario(scenario).options.warmup_s == 0.2
    scenario.write_text('methods = ["full"]\nseq = 64\nwarmup = "long"\n')
    bad = cli("sweep", str(scenario), "--dry-run")
    assert bad.returncode == 1 and "warmup: must be a positive number" in bad.stderr
