"""The sliding HDR window and the Prometheus bucket layout, against exact quantiles."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from exporter import quantiles
from exporter.quantiles import (
    BucketHistogram,
    SlidingHistogram,
    bucket_quantile,
    exact_quantile,
    latency_buckets,
)


def lognormal(n: int, median: float, sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [median * math.exp(rng.gauss(0, sigma)) for _ in range(n)]


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
def test_window_quantiles_agree_with_exact_ones_within_a_tenth_of_a_percent(n: int) -> None:
    samples = lognormal(n, 0.004, 1.2, seed=n)
    window = SlidingHistogram(300, 5, clock=lambda: 0.0)
    for value in samples:
        window.record(value)
    snapshot = window.snapshot()
    assert snapshot.count == n
    for q, got in ((0.5, snapshot.p50), (0.99, snapshot.p99), (0.999, snapshot.p999)):
        exact = exact_quantile(samples, q)
        assert got is not None
        assert got == pytest.approx(exact, rel=0.001), q
    assert snapshot.max == pytest.approx(max(samples), abs=1e-6)


def test_an_empty_window_has_no_quantiles() -> None:
    snapshot = SlidingHistogram(60, 3, clock=lambda: 0.0).snapshot()
    assert snapshot.count == 0
    assert snapshot.p99 is None and snapshot.max is None


def test_samples_leave_the_window_one_slice_at_a_time() -> None:
    window = SlidingHistogram(300, 5, clock=lambda: 0.0)
    window.record(0.5, now=0.0)  # first slice: [0, 60)
    window.record(0.001, 99, now=61.0)  # second slice: [60, 120)
    assert window.snapshot(now=299.0).count == 100
    assert window.snapshot(now=299.0).max == pytest.approx(0.5)
    # At 300 s the first slice's start leaves the window: its sample goes, the rest stays.
    after = window.snapshot(now=300.0)
    assert after.count == 99
    assert after.max == pytest.approx(0.001)
    assert window.snapshot(now=360.0).count == 0


def test_a_window_reuses_expired_slices_and_forgets_their_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allocated: list[object] = []
    real = quantiles._new_hdr

    def counting(highest: float) -> object:
        allocated.append(real(highest))
        return allocated[-1]

    monkeypatch.setattr(quantiles, "_new_hdr", counting)
    window = SlidingHistogram(50, 5, clock=lambda: 0.0)
    rng = random.Random(7)
    recent: list[tuple[float, float]] = []
    # An hour of samples, one every 0.5 s: 360 slices of 10 s each.
    for step in range(7200):
        now = step * 0.5
        value = rng.uniform(0.001, 0.2) if step < 3600 else rng.uniform(0.3, 0.4)
        window.record(value, now=now)
        recent.append((now, value))
    now = 7199 * 0.5
    # The window is the slices that started within the last 50 s: [3550, 3600).
    kept = [v for t, v in recent if t >= 3550.0]
    snapshot = window.snapshot(now=now)
    assert snapshot.count == len(kept)
    assert snapshot.p50 == pytest.approx(exact_quantile(kept, 0.5), rel=0.001)
    assert snapshot.max == pytest.approx(max(kept), abs=1e-6)
    # The samples below 0.3 s are half an hour old: none is left in a reused slice.
    assert snapshot.p50 is not None and snapshot.p50 >= 0.3
    # Five slices live, one expired and waiting, and the merge target: never one per slice.
    assert len(allocated) <= 5 + 2


def test_values_are_clamped_into_the_trackable_range() -> None:
    window = SlidingHistogram(60, 1, clock=lambda: 0.0)
    window.record(-1.0)
    window.record(1e9)
    snapshot = window.snapshot()
    assert snapshot.count == 2
    assert snapshot.max == pytest.approx(3600.0)


def test_a_window_can_have_a_lower_ceiling() -> None:
    window = SlidingHistogram(60, 1, clock=lambda: 0.0, highest=1.0)
    window.record(0.5)
    window.record(7.0)
    assert window.snapshot().max == pytest.approx(1.0)
    assert window.snapshot().p50 == pytest.approx(0.5, rel=0.001)


def test_the_default_buckets_sit_exactly_on_the_thresholds_and_the_timeout() -> None:
    bounds = latency_buckets((0.05, 0.1), highest=1.0)
    assert 0.05 in bounds and 0.1 in bounds and bounds[-1] == 1.0
    assert list(bounds) == sorted(set(bounds))
    dense = [b for b in bounds if 0.0125 <= b <= 0.4]
    ratios = [upper / lower for lower, upper in itertools.pairwise(dense)]
    assert max(ratios) <= 1.27 and min(ratios) >= 1.2
    assert len(bounds) <= 30  # series per label set stay modest


def test_buckets_follow_configured_thresholds() -> None:
    bounds = latency_buckets((0.03, 0.25), highest=2.0)
    assert 0.03 in bounds and 0.25 in bounds and 2.0 in bounds
    for anchor in (0.03, 0.25):
        index = bounds.index(anchor)
        assert bounds[index + 1] / anchor <= 1.27
        assert anchor / bounds[index - 1] <= 1.27


def test_bucket_counts_are_cumulative_and_le_is_inclusive() -> None:
    histogram = BucketHistogram((0.05, 0.1))
    for value in (0.01, 0.05, 0.07, 0.1, 3.0):
        histogram.observe(value)
    assert histogram.buckets() == [("0.05", 2), ("0.1", 4), ("+Inf", 5)]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(3.23)


def _width_at(bounds: tuple[float, ...], value: float) -> float:
    """The width of the bucket holding `value`."""
    for lower, upper in zip((0.0, *bounds), bounds, strict=False):
        if lower < value <= upper:
            return upper - lower
    raise AssertionError(f"{value} is outside the buckets")


@pytest.mark.parametrize("median", [0.015, 0.025, 0.03, 0.045])
def test_histogram_quantile_lands_within_one_bucket_of_the_exact_p99_near_thresholds(
    median: float,
) -> None:
    # Medians chosen so that p99 falls between about 40 ms and 120 ms.
    bounds = latency_buckets((0.05, 0.1), highest=1.0)
    samples = lognormal(20_000, median, 0.4, seed=int(median * 1e4))
    histogram = BucketHistogram(bounds)
    window = SlidingHistogram(300, 5, clock=lambda: 0.0)
    for value in samples:
        histogram.observe(value)
        window.record(value)
    exact = exact_quantile(samples, 0.99)
    assert 0.035 < exact < 0.15
    buckets = [(float(le), count) for le, count in histogram.buckets()]
    estimated = bucket_quantile(0.99, buckets)
    in_process = window.snapshot().p99
    assert in_process is not None
    assert abs(estimated - exact) <= _width_at(bounds, exact)
    assert abs(estimated - in_process) <= _width_at(bounds, in_process)


def test_histogram_quantile_matches_prometheus_edge_cases() -> None:
    assert math.isnan(bucket_quantile(0.99, [(math.inf, 0.0)]))
    assert math.isnan(bucket_quantile(0.99, [(0.1, 1.0), (1.0, 2.0)]))  # no +Inf bucket
    # Rank in the +Inf bucket: the highest finite bound, as Prometheus answers.
    assert bucket_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1
    # Interpolation inside a bucket.
    assert bucket_quantile(0.5, [(0.05, 0.0), (0.1, 10.0), (math.inf, 10.0)]) == pytest.approx(
        0.075
    )
