"""The terminal table explains itself: headers that say what a column holds, a legend line under
it for every mark and basis the rows show, and the set-up every row shares."""

from attnbench.results.report import load
from attnbench.views.render import console, legend_lines, rows_table, shown_columns


def _text(rows) -> str:
    screen = console()
    with screen.capture() as captured:
        screen.print(rows_table(rows))
    return captured.get()


def _row(method="full", n=512, **extra):
    return {"method": method, "seq_len": n, "status": "ok", "batch": 1, "heads": 8, "kv_heads": 2, "head_dim": 32,
            "dtype": "float32", "device": "cpu", "mode": "forward", "scope": "attention", "threads": 2,
            "sparsity": 1.0, "flops": 1e9, "flops_mismatch": False, "time_ms_median": 2.0, "time_ms_iqr": 0.1,
            "time_samples": 20, "time_noisy": False, "time_processes": 1, "time_process_spread": 1.0,
            "achieved_flops_per_s": 5e11, "machine_peak_flops_per_s": 1e12, "peak_source": "measured",
            "machine_peak_spread": 0.02, "machine_peak_fraction": 0.5, "machine_peak_flag": "",
            "bytes_moved_analytic": 1e6, "achieved_bandwidth_bytes_per_s": 5e8, **extra}


def test_headers_say_what_columns_hold_and_the_legend_explains_marks(small_report):
    rows = load(small_report).rows
    headers = [column.title(rows) for column in shown_columns(rows)]
    assert "density" in headers and "sparsity" not in headers  # the computed fraction, 1 = dense
    assert "GB/s (analytic)" in headers and "% measured GEMM" in headers
    assert "processes: spread" not in headers and "process spread" not in headers  # one process: nothing to show
    text = _text(rows)
    assert "all rows: batch 1, heads 2, kv heads 2, head_dim 16, float32, forward, on cpu" in text
    assert "density: attention scores computed / exact attention's (1 = every pair" in text
    assert "GB/s (analytic): the bytes the method's formula says it must move" in text
    assert "% peak: achieved FLOP/s over this machine's dense GEMM rate" in text


def test_marks_appear_in_the_legend_only_when_a_row_shows_them():
    plain = [_row(), _row(n=1024)]
    lines = legend_lines(plain, shown_columns(plain))
    assert not any(line.startswith("~") for line in lines) and not any("! marks" in line for line in lines)
    assert lines[0] == ("all rows: batch 1, heads 8, kv heads 2, head_dim 32, float32, forward, on cpu, attention "
                        "scope, 2 thread(s), timed in 1 process(es)")
    marked = [_row(time_noisy=True, time_samples=1, time_ms_iqr=0.0),
              _row(n=1024, machine_peak_fraction=1.3, machine_peak_flag="above the measured GEMM"),
              _row("flex", flops=None, flops_by_op="not counted: torch's FlopCounterMode cannot run FlexAttention"),
              _row("other", flops_mismatch=True)]
    text = _text(marked)
    assert "1 sample ~" in text and "0.000 ~" not in text  # one sample: no IQR to show
    assert "130.0 !" in text and "n/c" in text and "1.00 G (!)" in text
    legend = legend_lines(marked, shown_columns(marked))
    assert any(line.startswith("~ after the IQR: a noisy time") and "'1 sample'" in line for line in legend)
    assert any("! marks a fraction above 100%" in line for line in legend)
    assert any("n/c: not countable" in line and "(!) more than 10% from the method's formula" in line
               for line in legend)


def test_the_set_up_a_row_varies_is_left_to_the_case_column_and_spread_is_shown_for_processes():
    rows = [_row(head_dim=32), _row(head_dim=64, time_processes=3, time_process_spread=1.12)]
    text = _text(rows)
    assert "head_dim=32" in text and "head_dim=64" in text  # the case names what differs ...
    assert "all rows: batch 1, heads 8, kv heads 2, float32" in text  # ... the caption what all share
    assert "process spread" in text and "12% of 3" in text
    default_kv = [_row(kv_heads=None)]
    assert "heads 8, kv heads 8," in legend_lines(default_kv, shown_columns(default_kv))[0]


def test_a_sentinel_default_says_what_it_stands_for():
    rows = [_row("sbm", param_density=0.0, param_clusters=128), _row("sbm", n=1024, param_density=0.01)]
    lines = legend_lines(rows, shown_columns(rows))
    assert "sbm: density 0.0 = as initialised, about a quarter of all pairs, so O(n^2) work; give e.g. -p " \
           "density=0.01" in lines
    assert not any(line.startswith("sbm:") for line in legend_lines(rows[1:], shown_columns(rows[1:])))
