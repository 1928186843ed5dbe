"""The Wilson interval, the windowed counts behind the failure ratio, and the quantile."""

from __future__ import annotations

import math
import random

import pytest

from exporter.stats import Z_95, WindowedCounts, estimate, quantile, wilson_interval


def test_wilson_matches_an_independent_value() -> None:
    # 30 of 3000: the same figure the alert rules' tests quote.
    lower, upper = wilson_interval(30, 3000)
    assert lower == pytest.approx(0.007013658954895165, abs=1e-15)
    assert upper == pytest.approx(0.0142396, abs=1e-6)


def test_three_failures_in_two_hundred_is_not_a_certain_one_and_a_half_percent() -> None:
    lower, upper = wilson_interval(3, 200)
    assert lower == pytest.approx(0.00512, abs=1e-4)
    assert upper == pytest.approx(0.04317, abs=1e-4)
    assert lower < 0.015 < upper


def test_no_failures_give_a_lower_bound_of_exactly_zero_and_a_shrinking_upper() -> None:
    for n in (10, 200, 2000):
        lower, upper = wilson_interval(0, n)
        assert lower == 0.0
        assert upper == pytest.approx(Z_95**2 / (n + Z_95**2))


def test_all_failures_give_an_upper_bound_of_exactly_one() -> None:
    assert wilson_interval(7, 7)[1] == 1.0


@pytest.mark.parametrize(("failures", "trials"), [(-1, 10), (11, 10), (0, 0)])
def test_wilson_rejects_impossible_counts(failures: int, trials: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(failures, trials)


def test_wilson_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = random.Random(7)
    p, n, trials = 0.01, 2000, 600
    covered = 0
    for _ in range(trials):
        failures = sum(rng.random() < p for _ in range(n))
        lower, upper = wilson_interval(failures, n)
        covered += lower <= p <= upper
    assert 0.92 <= covered / trials <= 0.98


def test_estimate_is_none_without_trials_and_carries_the_point_ratio() -> None:
    assert estimate(0, 0) is None
    result = estimate(5, 500)
    assert result is not None
    assert result.ratio == 0.01 and result.lower < 0.01 < result.upper


def test_window_forgets_old_slices() -> None:
    window = WindowedCounts(window=60.0, slices=6)
    window.add(0.0, trials=10, failures=1)
    window.add(30.0, trials=5)
    assert window.totals(30.0) == (15, 1)
    assert window.totals(59.9) == (15, 1)
    # The first slice [0, 10) leaves the window once a full window has passed its start.
    assert window.totals(60.0) == (5, 0)
    assert window.totals(90.0) == (0, 0)
    window.add(95.0, trials=2, failures=2)
    assert window.totals(95.0) == (2, 2)


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        WindowedCounts(0, 1)
    with pytest.raises(ValueError):
        WindowedCounts(10, 0)


def test_quantile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert quantile(values, 0.5) == 5.0
    assert quantile(values, 0.9) == 9.0
    assert quantile(values, 1.0) == 10.0
    assert quantile([3.0], 0.1) == 3.0
    assert math.isclose(quantile(values, 0.01), 1.0)
    with pytest.raises(ValueError):
        quantile([], 0.5)
