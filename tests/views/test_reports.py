"""Summary lines, pattern pictures and the error / Pareto / density figures."""

import pandas as pd
import pytest

from attnbench.judge.summary import summary_lines
from attnbench.views.accuracy import breakdown_figure, density_figure, error_figure, pareto_figure
from tests.conftest import cli


def rows(method, times, ns=(1024, 2048, 4096), iqr=0.0, **extra):
    return [{"method": method, "seq_len": n, "status": "ok", "time_ms_median": t, "time_ms_iqr": iqr,
             "peak_mem_bytes": 1e6 * (n / 1024) ** (2 if method == "full" else 1), "mode": "forward", **extra}
            for n, t in zip(ns, times)]


def test_summary_fits_exponents_finds_the_crossover_and_states_ratios():
    report = rows("full", [10, 40, 160], iqr=1.0) + rows("fast", [20, 40, 80], iqr=2.0)
    lines = summary_lines(report)
    assert lines[0] == "full: time ~ n^2.00 +/- 0.00, memory ~ n^2.00 +/- 0.00"
    assert lines[1] == "fast: time ~ n^1.00 +/- 0.00, memory ~ n^1.00 +/- 0.00, cheaper than the reference from n~2048"
    assert lines[-2].startswith("  fast ran 2.00 +/- ")
    assert lines[-2].endswith("times faster than full (one process's spread)")
    assert lines[-1].startswith("times come from one process per case")  # said once, at the end
    never = summary_lines(rows("full", [10, 20, 40]) + rows("slow", [30, 60, 120]))
    assert "not cheaper than the reference up to n=4096" in never[1]


def test_error_pareto_and_density_figures_have_their_axes():
    frame = pd.DataFrame([{"method": m, "seq_len": 512, "status": "ok", "param_features": f, "error_spectral": e,
                           "error_spectral_std": e / 10, "time_ms_median": t}
                          for m, scale in (("skyformer", 1.0), ("performer", 3.0))
                          for f, e, t in ((16, 0.4 * scale, 1.0), (64, 0.2 * scale, 2.0), (256, 0.1 * scale, 4.0))])
    err = error_figure(frame)
    assert err.axes[0].get_xscale() == "log" and "spectral" in err.axes[0].get_ylabel()
    assert len(err.axes[0].containers) == 2  # one error-bar series per method
    pareto = pareto_figure(frame)
    assert pareto.axes[0].get_xlabel() == "time per call (ms)"
    assert error_figure(frame.drop(columns="error_spectral")) is None
    density = density_figure(pd.DataFrame([{"method": "sbm", "seq_len": n, "status": "ok", "density_mean": 0.01,
                                            "density_std": 0.001, "param_density": 0.01} for n in (512, 1024)]))
    assert "density" in density.axes[0].get_ylabel()


def test_the_breakdown_figure_circles_where_error_reaches_one_and_places_real_inputs():
    random = [{"method": "skyformer", "seq_len": 512, "status": "ok", "inputs": "random", "param_features": f,
               "input_scale": scale, "cond_score_max": 4 * scale**2, "error_spectral": error * scale}
              for f in (16, 128) for scale, error in ((0.5, 0.1), (1.0, 0.4), (2.0, 0.9))]
    real = [{"method": "skyformer", "seq_len": 512, "status": "ok", "inputs": source, "param_features": 16,
             "input_scale": 1.0, "cond_score_max": 15.0, "error_spectral": 1.3} for source in ("init", "pretrained")]
    fig = breakdown_figure(pd.DataFrame(random + real))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "|q.k|" in ax.get_xlabel()
    assert len(ax.lines) == 3  # two sizes of one method, and the error = 1 line
    circled = [c for c in ax.collections if len(c.get_offsets()) == 1 and c.get_offsets()[0][1] >= 1.0]
    assert [tuple(c.get_offsets()[0]) for c in circled][:2] == [(16.0, 1.8), (16.0, 1.8)]  # error 0.9 x 2
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "skyformer, pretrained inputs" in names and "skyformer features=16" in names
    assert breakdown_figure(pd.DataFrame(random).drop(columns="cond_score_max")) is None


@pytest.mark.parametrize("method, params", [("sbm", ["-p", "density=0.1"]), ("longformer", ["-p", "window=32"]),
                                            ("skyformer", [])])
def test_show_pattern_draws_a_picture(tmp_path, method, params):
    out = tmp_path / f"{method}.png"
    result = cli("show-pattern", "-m", method, "-n", "128", "--heads", "2", *params, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 5000


def test_summary_command_reads_a_report(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame(rows("full", [10, 40, 160]) + rows("fast", [20, 40, 80])).to_csv(path, index=False)
    result = cli("summary", str(path))
    assert result.returncode == 0 and "fast ran 2.00" in result.stdout


def test_relative_tables_follow_the_papers_layout_with_the_paper_beside(tmp_path):
    def row(method, task, n, flops, memory, **params):
        return {"method": method, "task": task, "seq_len": n, "status": "ok", "flops": flops,
                "peak_mem_bytes": memory, "scope": "model", "mode": "forward", **params}

    rows = [row("full-explicit", "L", 2048, 100.0, 10.0), row("linear", "L", 2048, 2.0, 1.8),
            row("sbm", "L", 2048, 7.0, 1.9, param_density=0.0115),
            row("full-explicit", "T", 3072, 100.0, 10.0), row("linear", "T", 3072, 1.0, 1.6),
            row("sbm", "T", 3072, 50.0, 1.0, param_density=0.1062)]
    path = tmp_path / "table3.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = cli("summary", str(path), "--relative-to", "full-explicit", "--paper", "sbm-table3")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Table 3" in text and "| method | L | T | R | I | P |" in text
    assert "| linear | 0.02 \\| 0.02 | 0.01 \\| 0.01 | - \\| 0.02 |" in text  # ours | paper's, per task
    memory = text[text.index("memory relative"):text.index("flops relative")]
    flops = text[text.index("flops relative"):]
    assert "| ordering agrees | yes | yes | - | - | - |" in flops
    # T: ours sbm 0.10 < linear 0.16 < full; the paper's SBM used 1.01x full's memory: 2 of 3 pairs swap
    assert "| ordering agrees | yes | no (tau -0.33) | - | - | - |" in memory


def test_scenario_tasks_set_lengths_batches_and_parameters(tmp_path):
    scenario = tmp_path / "tasks.toml"
    scenario.write_text('methods = ["full", "sbm"]\nscope = "model"\nmode = "forward"\n'
                        'tasks = [{ name = "L", seq = 2048, params = { density = 0.01 } },\n'
                        '         { name = "I", seq = 1024, batch = 2, params = { density = 0.02 } }]\n')
    from attnbench.plan.scenario import load_scenario

    cases = load_scenario(scenario).cases()
    assert [(c.method, c.task, c.seq_len, c.batch, c.params.get("density")) for c in cases] == [
        ("full", "L", 2048, 1, None), ("sbm", "L", 2048, 1, 0.01),
        ("full", "I", 1024, 2, None), ("sbm", "I", 1024, 2, 0.02)]
    bad = tmp_path / "bad.toml"
    bad.write_text('methods = ["full"]\ntasks = [{ name = "L" }]\n')
    result = cli("sweep", str(bad))
    assert result.returncode == 1 and "tasks[0]: must be a table" in result.stderr


def test_pareto_places_a_method_with_its_own_target_by_that_error():
    frame = pd.DataFrame({"method": ["skyformer", "full"], "seq_len": [512, 512], "status": "ok",
                          "time_ms_median": [1.0, 2.0], "error_spectral": [2.9, 1e-7],
                          "error_target_spectral": [0.05, None]})
    fig = pareto_figure(frame)
    points = {c.get_label(): c.get_offsets()[0][1] for c in fig.axes[0].collections}
    assert points["skyformer"] == pytest.approx(0.05) and points["full"] == pytest.approx(1e-7)


def test_scenarios_read_on_python_3_10_through_tomli(tmp_path, monkeypatch):
    import importlib
    import sys

    import attnbench.plan.scenario
    import attnbench.tomlfile

    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on 3.10: importing it fails
    module = importlib.reload(attnbench.tomlfile)
    try:
        assert module.tomllib.__name__ == "tomli"
        scenario = tmp_path / "s.toml"
        scenario.write_text('methods = ["full"]\nseq = 64\n')
        assert attnbench.plan.scenario.load_scenario(scenario).seq == [64]
    finally:
        monkeypatch.undo()
        importlib.reload(attnbench.tomlfile)


def test_method_descriptions_say_what_stands_in_for_what():
    from attnbench.methods.registry import get_method

    def helps(name):
        return " ".join(p.help for p in get_method(name).params())

    assert "fixed seeded Gaussian projection" in helps("smartbird") and "trained tiny Transformer" in helps("smartbird")
    assert "realised density is lower" in helps("sbm") and "not the released clipping" in helps("sbm")
    assert cli("list", "s*").returncode == 0  # attnbench list shows these texts


def test_noisy_timings_are_marked_in_the_summary_and_drawn_hollow():
    from attnbench.judge.summary import loglog_slope_se
    from attnbench.measure.statistics import quiet
    from attnbench.views.plot import efficiency_figure

    assert not quiet([10.0, 10.0]) and quiet([10.0] * 5)  # 2 samples cannot be quiet
    slope, se = loglog_slope_se([1024, 2048, 4096], [10, 38, 170])
    assert 1.9 < slope < 2.2 and 0 < se < 0.2
    report = rows("full", [10, 40, 160]) + rows("fast", [20, 40, 80], time_noisy=False)
    report[4]["time_noisy"] = True  # fast at n=2048
    lines = summary_lines(report)
    assert "(noisy at n=2048)" in lines[1] and "(from noisy points)" in lines[1]
    fig = efficiency_figure(pd.DataFrame(report))
    hollow = [line for line in fig.axes[0].lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [2048]


def test_figures_a_paper_can_use(small_report, tmp_path):
    from attnbench.views.axes import method_styles
    from attnbench.views.plot import efficiency_figure, plot_report

    frame = pd.read_csv(small_report)
    fig = efficiency_figure(frame, title="t")
    time_ax, memory_ax = fig.axes[0], next(ax for ax in fig.axes if "memory" in ax.get_title())
    assert [t.get_text() for t in time_ax.get_xticklabels()] == ["128", "256"]
    wide = pd.DataFrame({"method": "full", "seq_len": [512, 1024, 4096], "status": "ok",
                         "time_ms_median": [1.0, 2.0, 4.0], "peak_mem_bytes": [2**20, 2**22, 2**24]})
    wide_fig = efficiency_figure(wide)
    assert [t.get_text() for t in wide_fig.axes[0].get_xticklabels()] == ["512", "1k", "4k"]
    memory = wide_fig.axes[1]
    memory.figure.canvas.draw()
    assert {"1 MiB", "4 MiB", "16 MiB"} <= {t.get_text() for t in memory.get_yticklabels()}
    assert memory_ax.get_ylabel() == "peak memory"
    colours = method_styles(frame)
    lines = {line.get_label(): line for line in time_ax.lines}
    assert lines["full"].get_color() == colours["full"]["color"]
    assert lines["full"].get_marker() != lines["full-explicit"].get_marker()  # overlapping lines stay apart
    errors = frame.assign(error_spectral=0.1, time_ms_median=1.0)
    scatter = {c.get_label(): c for c in pareto_figure(errors).axes[0].collections}
    from matplotlib.colors import to_rgb

    assert tuple(scatter["skyformer"].get_facecolor()[0][:3]) == pytest.approx(to_rgb(colours["skyformer"]["color"]))
    paths = plot_report(frame, tmp_path, "r", formats=("pdf",))
    assert paths[0].suffix == ".pdf" and paths[0].stat().st_size > 1000
    from attnbench.views.axes import describe

    assert describe(frame) == "b=1, h=2, d=16, float32, cpu, attention scope, forward"


def test_equal_counts_stay_visible_ticks_read_plainly_and_hollow_points_are_in_the_legend():
    from attnbench.views.plot import efficiency_figure

    equal = [{"method": m, "seq_len": n, "status": "ok", "flops": 4.0 * n * n, "time_ms_median": t,
              "time_noisy": noisy} for m, t, noisy in (("full", 3.0, True), ("kernelized", 4.0, False),
                                                        ("full-explicit", 5.0, False)) for n in (4096,)]
    fig = efficiency_figure(pd.DataFrame(equal))
    flops_ax = next(ax for ax in fig.axes if ax.get_title() == "FLOPs")
    widths = {line.get_label(): line.get_linewidth() for line in flops_ax.lines
              if not line.get_label().startswith("O(")}
    assert len(set(widths.values())) == 3  # one on another: each drawn wider than the one above it
    sizes = sorted(line.get_markersize() for line in flops_ax.lines if line.get_label() in widths)
    assert sizes[0] < sizes[1] < sizes[2]
    fig.canvas.draw()
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels()]
    assert labels and not any("10^" in label or "\\times" in label for label in labels), labels
    wide = quality_axes_labels()
    assert "1e-07" in wide and "0.1" in wide and "0.2" not in wide  # nine decades: one tick each
    assert "4k" in labels
    assert "hollow: a noisy time" in [text.get_text() for text in fig.legends[0].get_texts()]


def quality_axes_labels() -> list[str]:
    from attnbench.views.accuracy import quality_figure

    frame = pd.DataFrame([{**row, "error_spectral": 1e-7 if row["method"] == "full" else row["error_spectral"]}
                          for row in _error_only() + [{**r, "method": "full"} for r in _error_only()[:6]]])
    fig = quality_figure(frame)
    fig.canvas.draw()
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def _error_only():
    """What `run --inputs capture:... --metrics error,conditioning` writes: no time, one row per layer."""
    return [{"method": m, "seq_len": 128, "status": "ok", "layer": layer, "inputs": "capture:minilm.pt",
             "error_spectral": e * (1 + layer / 10), "cond_score_max": 5.0 + layer}
            for m, e in (("performer", 0.4), ("skyformer", 0.1)) for layer in range(6)]


def test_a_report_of_errors_alone_is_plotted_and_summarised(tmp_path):
    from attnbench.judge.summary import quality_lines
    from attnbench.views.accuracy import quality_figure
    from attnbench.views.plot import efficiency_figure, plot_report

    frame = pd.DataFrame(_error_only())
    assert efficiency_figure(frame) is None  # no empty time figure
    failed = pd.DataFrame(rows("full", [10, 40, 160])).assign(status="oom")
    assert efficiency_figure(failed) is None and plot_report(failed, tmp_path, "f") == []
    fig = quality_figure(frame)
    assert [ax.get_xlabel() for ax in fig.axes[:2]] == ["model layer", "model layer"]
    assert {line.get_label() for line in fig.axes[0].lines} == {"performer", "skyformer"}
    names = {path.name for path in plot_report(frame, tmp_path, "e")}
    assert {"e-quality.png", "e-quality.svg"} <= names and not any("efficiency" in name for name in names)
    lines = quality_lines(_error_only())
    assert lines[0] == "error and conditioning per method: median (range over layers and lengths, rows)"
    assert lines[2] == "  skyformer: spectral error 0.125 (0.1-0.15, 6); max |score| 7.5 (5-10, 6)"
    assert summary_lines(_error_only()) == []  # no time: the time lines have nothing to say


def test_summary_writes_milliseconds_without_powers_of_ten():
    from attnbench.judge.summary import milliseconds

    assert [milliseconds(v) for v in (4620.4, 26.14, 0.08123)] == ["4620 ms", "26.1 ms", "0.0812 ms"]
    lines = summary_lines(rows("full", [1200, 4620.4, 9000]) + rows("fast", [10, 20, 40]))
    assert "at n=4096, full took 9000 ms; relative to it:" in lines


def test_tick_numbers_read_plainly():
    from attnbench.views.axes import short

    assert [short(v) for v in (0.5, 2.0, 50.0, 5000.0, 2e5, 5e8, 2e9, 3e12)] == [
        "0.5", "2", "50", "5000", "200 k", "500 M", "2 G", "3 T"]
