import pytest

from attnbench.analysis import linear_fit, loglog_slope


def test_fits_recover_known_lines_and_powers():
    a, b, r2 = linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert (a, b, r2) == pytest.approx((1, 2, 1))
    assert loglog_slope([1e3, 2e3, 4e3], [5e3 * x**2 for x in (1, 2, 4)]) == pytest.approx(2)
    assert linear_fit([1, 2, 3], [1, 3, 2])[2] < 0.5
