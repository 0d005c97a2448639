import pytest

from attnbench.judge.summary import loglog_slope, loglog_slope_se


def test_fits_recover_known_powers_with_their_standard_error():
    assert loglog_slope([1e3, 2e3, 4e3], [5e3 * x**2 for x in (1, 2, 4)]) == pytest.approx(2)
    slope, se = loglog_slope_se([1, 2, 4, 8], [1, 4.4, 15, 70])
    assert 1.9 < slope < 2.1 and 0 < se < 0.2
    assert loglog_slope_se([1, 2], [1, 4])[1] is None
