"""The GEMM yardstick that "% measured GEMM" divides by: measured beside the case, in rounds, so a
machine slowed by other work slows both; flagged when it moved or when a fraction exceeds 1."""

import pytest

from attnbench.measure import timing
from attnbench.measure.machine import peaks
from attnbench.metrics.time import combine, time_columns
from attnbench.results.schema import Row

RATE = 100e9  # FLOP/s of the quiet machine in the stand-in below


def _machine(monkeypatch, slowdowns: list[float]):
    """A stand-in machine whose speed changes between rounds: the k-th GEMM burst and the k-th
    round of the case both run `slowdowns[k]` times slower. Returns timed(share, first)."""
    bursts = iter(slowdowns + [slowdowns[-1]])
    rounds = iter(slowdowns)
    monkeypatch.setattr(peaks, "spec_peak_of", lambda device, dtype: None)
    def gemm_rates(device, dtype, threads, short=False):
        slow = next(bursts)
        return [[RATE / slow] * 5, [0.9 * RATE / slow] * 5]
    monkeypatch.setattr(timing, "gemm_rates", gemm_rates)

    def timed(share, first):
        slow = next(rounds)
        return timing.Timing(tuple(0.010 * slow for _ in range(4)), 1)
    return timed


def test_a_load_that_slows_the_machine_slows_the_yardstick_and_the_fraction_holds(monkeypatch):
    quiet_timing, quiet = peaks.beside_yardstick("cpu", "float32", 2, _machine(monkeypatch, [1.0] * 4), 0.5)
    loaded_timing, loaded = peaks.beside_yardstick("cpu", "float32", 2, _machine(monkeypatch, [2.0] * 4), 0.5)
    assert loaded_timing.median_ms == pytest.approx(2 * quiet_timing.median_ms)  # the time doubled ...
    work = 0.5e9  # FLOPs of the case
    fractions = [time_columns([timing_.samples_ms], 1, {"flops": work, **columns})["machine_peak_fraction"]
                 for timing_, columns in ((quiet_timing, quiet), (loaded_timing, loaded))]
    assert fractions[0] == pytest.approx(fractions[1]) == pytest.approx(0.5)  # ... the fraction did not move
    assert quiet["peak_source"] == loaded["peak_source"] == "measured"
    assert quiet["machine_peak_spread"] == 0 and len(quiet_timing.samples_s) == 16  # four rounds of four samples


def test_a_yardstick_that_moved_and_a_fraction_above_one_are_flagged(monkeypatch):
    _, moved = peaks.beside_yardstick("cpu", "float32", 2, _machine(monkeypatch, [1.0, 1.0, 3.0, 3.0]), 0.5)
    assert moved["machine_peak_spread"] > 0.1
    columns = time_columns([[10.0] * 5], 1, {"flops": 0.5e9, **moved})
    assert "fraction moved" in columns["machine_peak_flag"]
    fast = time_columns([[1.0] * 5], 1, {"flops": 0.5e9, "machine_peak_flops_per_s": 100e9,
                                          "peak_source": "measured", "machine_peak_spread": 0.01})
    assert fast["machine_peak_fraction"] == pytest.approx(5.0)
    assert fast["machine_peak_flag"] == "above the measured GEMM"
    plain = time_columns([[10.0] * 5], 1, {"flops": 0.5e9, "machine_peak_flops_per_s": 100e9,
                                           "peak_source": "measured", "machine_peak_spread": 0.01})
    assert plain["machine_peak_flag"] == ""


def test_a_long_call_takes_the_rest_of_its_budget_in_one_round(monkeypatch):
    monkeypatch.setattr(peaks, "spec_peak_of", lambda device, dtype: None)
    monkeypatch.setattr(timing, "gemm_rates", lambda device, dtype, threads, short=False: [[RATE] * 5])
    shares = []

    def timed(share, first):
        shares.append((share, first))
        return timing.Timing((2.0,), 1)  # one call outlasts the round
    found, _ = peaks.beside_yardstick("cpu", "float32", 1, timed, 0.5)
    assert shares == [(0.25, True), (0.75, False)] and len(found.samples_s) == 2


def test_a_datasheet_peak_times_in_one_round(monkeypatch):
    monkeypatch.setattr(peaks, "spec_peak_of", lambda device, dtype: 989e12)
    calls = []
    found, columns = peaks.beside_yardstick("cuda", "bfloat16", 0, lambda share, first: calls.append(share)
                                            or timing.Timing((1e-3,), 1), 0.5)
    assert calls == [1.0] and columns == {"machine_peak_flops_per_s": 989e12, "peak_source": "spec",
                                          "machine_peak_spread": None}


def test_a_short_budget_is_one_round_between_two_bursts(monkeypatch):
    timed = _machine(monkeypatch, [1.0, 2.0])
    found, columns = peaks.beside_yardstick("cpu", "float32", 2, timed, 0.05)  # a test's or a quick run's budget
    assert len(found.samples_s) == 4 and columns["machine_peak_spread"] > 0.1  # the two bursts: 1x and 2x


def test_processes_merge_their_yardsticks_as_their_times():
    def row(time_ms, peak):
        return Row({"status": "ok", "time_calls_per_sample": 1, "flops": 1e9, "machine_peak_flops_per_s": peak,
                    "peak_source": "measured", "machine_peak_spread": 0.02, "time_ms_median": time_ms},
                   samples=[[time_ms] * 5])
    # the second process ran on a machine 4x slower for the case and its GEMMs alike: one fraction
    merged = combine(row(10.0, 100e9), [row(40.0, 25e9)])
    assert merged["machine_peak_flops_per_s"] == pytest.approx(50e9)  # geometric means: time 20 ms
    assert merged["machine_peak_fraction"] == pytest.approx(1e9 / 0.010 / 100e9)  # each process's fraction
    assert merged["machine_peak_spread"] == pytest.approx(0.02) and merged["machine_peak_flag"] == ""
    # ... a process whose case alone slowed down: their fractions differ, and the row says so
    apart = combine(row(10.0, 100e9), [row(40.0, 100e9)])
    assert apart["machine_peak_spread"] == pytest.approx(3.0) and "fraction moved" in apart["machine_peak_flag"]


def test_a_burst_times_the_real_gemm_at_two_sizes():
    rates = timing.gemm_rates("cpu", "float32", 1)
    assert len(rates) == 2 and all(len(calls) == timing.GEMM_CALLS and min(calls) > 0 for calls in rates)
    assert timing.GEMM_SIZES[("cpu", "float32", 1)] >= 256
    (short,) = timing.gemm_rates("cpu", "float32", 1, short=True)  # a quick case's burst: one call, one size
    assert len(short) == 1
