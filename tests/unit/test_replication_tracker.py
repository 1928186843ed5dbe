"""Sentinel bookkeeping: midpoint estimates, a lag that grows while unseen, losses, replicas."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from exporter.quantiles import bucket_quantile
from exporter.slo.freshness import VisibilityWindow
from probes.replication.tracker import VISIBILITY_BUCKETS, BucketCounts, SentinelTracker

ONE = {"eu": frozenset({None})}


def tracker(timeout: float = 30.0) -> SentinelTracker:
    return SentinelTracker(["eu"], sentinel_timeout=timeout)


def test_estimate_is_the_midpoint_of_last_miss_and_first_hit() -> None:
    t = tracker()
    t.add(1, acked=100.0, readers=ONE)
    assert t.observe("eu", None, None, sent=100.01, received=100.012) == []
    done = t.observe("eu", None, 1, sent=100.06, received=100.062)
    assert [c.sequence for c in done] == [1]
    assert done[0].lag == pytest.approx((100.01 + 100.062) / 2 - 100.0)
    assert done[0].resolution == pytest.approx(0.052)
    state = t.targets["eu"]
    assert state.estimate == pytest.approx(0.036)
    assert state.visibility.count == 1


def test_a_hit_on_the_first_read_is_bracketed_by_the_acknowledgement() -> None:
    t = tracker()
    t.add(1, acked=5.0, readers=ONE)
    (done,) = t.observe("eu", None, 1, sent=5.001, received=5.004)
    assert done.lag == pytest.approx(0.002)
    assert done.resolution == pytest.approx(0.004)


def test_a_miss_sent_before_the_acknowledgement_tells_nothing() -> None:
    t = tracker()
    t.add(1, acked=5.0, readers=ONE)
    t.observe("eu", None, None, sent=4.9, received=5.2)
    (done,) = t.observe("eu", None, 1, sent=5.3, received=5.4)
    assert done.resolution == pytest.approx(0.4)  # from the acknowledgement, not from 4.9


def test_lag_is_the_age_of_the_oldest_unseen_sentinel_and_keeps_growing() -> None:
    t = tracker()
    t.add(1, acked=0.0, readers=ONE)
    t.observe("eu", None, 1, sent=0.01, received=0.02)
    t.add(2, acked=1.0, readers=ONE)
    t.add(3, acked=2.0, readers=ONE)
    samples = [t.lag("eu", now) for now in (1.5, 2.5, 3.5, 4.5)]
    assert samples == pytest.approx([0.5, 1.5, 2.5, 3.5])


def test_a_steady_delay_reads_steady_between_sightings() -> None:
    """A sentinel a second, each seen 1.5 s after its acknowledgement: the lag holds 1.5 s,
    not the 0.5 s the next sentinel's age reads just after each sighting."""
    t = tracker()
    t.add(1, acked=0.0, readers=ONE)
    t.observe("eu", None, None, sent=1.45, received=1.45)
    t.observe("eu", None, 1, sent=1.55, received=1.55)
    samples = []
    for k in range(2, 8):  # sentinel k acknowledged at k - 1 and seen at k + 0.55
        t.add(k, acked=k - 1.0, readers=ONE)
        samples.append(t.lag("eu", k - 0.9))  # sentinel k - 1, 1.1 s old, still unseen
        t.observe("eu", None, None, sent=k - 0.55, received=k - 0.55)
        t.observe("eu", None, k - 1, sent=k - 0.45, received=k - 0.45)
        samples.append(t.lag("eu", k - 0.4))  # just after: sentinel k is 0.6 s old
    assert samples == pytest.approx([1.5] * len(samples), abs=0.06)


def test_after_a_stall_the_newest_completed_sentinel_sets_the_lag() -> None:
    t = tracker()
    for seq, acked in ((1, 0.0), (2, 1.0), (3, 2.0)):
        t.add(seq, acked=acked, readers=ONE)
    t.observe("eu", None, None, sent=2.95, received=3.2)
    done = t.observe("eu", None, 3, sent=3.0, received=3.25)
    assert [c.sequence for c in done] == [1, 2, 3]
    assert t.lag("eu", 3.3) == pytest.approx(done[-1].lag)
    assert done[-1].lag == pytest.approx((2.95 + 3.25) / 2 - 2.0)
    assert t.targets["eu"].visibility.count == 3


def test_an_older_value_is_a_miss() -> None:
    t = tracker()
    t.add(7, acked=0.0, readers=ONE)
    assert t.observe("eu", None, 6, sent=0.1, received=0.11) == []
    assert t.wants("eu", None)


def test_lost_sentinels_are_counted_and_the_lag_still_grows() -> None:
    t = tracker(timeout=3.0)
    for seq in range(1, 6):
        t.add(seq, acked=float(seq), readers=ONE)
        t.expire(float(seq))
    assert t.expire(4.0) == {}  # sentinel 1 is 3 s old exactly at 4.0: already expired above
    assert t.targets["eu"].lost == 2
    assert t.expire(6.5) == {"eu": 1}
    assert t.targets["eu"].lost == 3
    # The lag keeps measuring from sentinel 1, lost or not.
    assert t.lag("eu", 10.0) == pytest.approx(9.0)
    assert t.lag("eu", 20.0) == pytest.approx(19.0)


def test_seeing_a_later_sentinel_supersedes_the_lost_ones() -> None:
    t = tracker(timeout=3.0)
    for seq in range(1, 4):
        t.add(seq, acked=float(seq), readers=ONE)
    t.expire(5.5)
    assert t.targets["eu"].lost == 2
    t.add(4, acked=6.0, readers=ONE)
    t.observe("eu", None, 4, sent=6.01, received=6.02)
    state = t.targets["eu"]
    assert state.lost_unseen_since is None and state.pending == []
    assert t.lag("eu", 6.5) == pytest.approx(0.01)


def test_lag_is_unknown_before_any_sentinel_and_when_none_is_acknowledged_for_long() -> None:
    t = tracker(timeout=3.0)
    assert t.lag("eu", 0.0) is None
    t.add(1, acked=0.0, readers=ONE)
    t.observe("eu", None, 1, sent=0.01, received=0.02)
    assert t.lag("eu", 2.0) == pytest.approx(0.01)
    assert t.lag("eu", 3.5) is None


def test_lag_is_never_negative() -> None:
    t = tracker()
    t.add(1, acked=10.0, readers=ONE)
    assert t.lag("eu", 9.0) == 0.0


def test_per_replica_a_sentinel_is_seen_only_when_every_replica_has_it() -> None:
    t = tracker()
    replicas = {"eu": frozenset({"a", "b"})}
    t.add(1, acked=0.0, readers=replicas)
    assert t.observe("eu", "a", 1, sent=0.01, received=0.02) == []
    assert not t.wants("eu", "a") and t.wants("eu", "b")
    assert t.lag("eu", 1.0) == pytest.approx(1.0)  # replica b still hides nothing
    t.observe("eu", "b", None, sent=1.95, received=1.96)
    (done,) = t.observe("eu", "b", 1, sent=2.0, received=2.01)
    assert done.lag == pytest.approx((1.95 + 2.01) / 2)
    assert done.resolution == pytest.approx(0.06)


def test_readers_lists_who_is_still_waited_for() -> None:
    t = SentinelTracker(["ca", "eu"], sentinel_timeout=30.0)
    t.add(1, acked=0.0, readers={"ca": frozenset({None}), "eu": frozenset({"x"})})
    assert t.readers() == {("ca", None), ("eu", "x")}
    t.observe("ca", None, 1, sent=0.1, received=0.2)
    assert t.readers() == {("eu", "x")}


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    counts = BucketCounts((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 2.0):
        counts.observe(value)
    assert counts.cumulative() == [("0.1", 2.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert counts.sum == pytest.approx(3.65) and counts.count == 5


def test_default_buckets_grow_by_a_tenth_from_half_a_millisecond_to_ten_seconds() -> None:
    assert list(VISIBILITY_BUCKETS) == sorted(set(VISIBILITY_BUCKETS))
    assert VISIBILITY_BUCKETS[0] < 0.001 and 1.0 in VISIBILITY_BUCKETS
    up_to_ten = [b for b in VISIBILITY_BUCKETS if b < 11.0]
    assert up_to_ten[-1] > 10.0
    for low, high in itertools.pairwise(up_to_ten):
        assert high / low <= 1.102, (low, high)  # 1.1, rounded to four digits


@pytest.mark.parametrize(
    ("where", "draw"),
    [
        ("the same host", lambda r: r.lognormvariate(math.log(0.0008), 0.3)),
        ("the same region", lambda r: r.lognormvariate(math.log(0.012), 0.5)),
        ("across regions", lambda r: 0.070 + r.expovariate(1 / 0.015)),
        ("a 300 ms delay", lambda r: r.gauss(0.300, 0.015)),
        ("stalls now and then", lambda r: r.uniform(1.0, 8.0) if r.random() < 0.02 else 0.02),
    ],
)
def test_histogram_quantile_over_the_buckets_is_within_10_percent_of_the_window(
    where: str, draw: Callable[[random.Random], float]
) -> None:
    """What a dashboard's histogram_quantile shows against /freshness's exact quantile."""
    rng = random.Random(where)
    values = [max(0.0, draw(rng)) for _ in range(20_000)]
    counts = BucketCounts()
    window = VisibilityWindow(3600.0)
    window.update((0, ()), now=0.0)
    for value in values:
        counts.observe(value)
    for start in range(0, len(values), 200):
        window.update((start + 200, tuple(values[start : start + 200])), now=1.0)
    buckets = [(float(le), count) for le, count in counts.cumulative()]
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = window.quantile(q, now=1.0)
        assert exact is not None
        shown = bucket_quantile(q, buckets)
        assert abs(shown - exact) <= 0.10 * exact, (where, q, shown, exact)


def test_a_reader_that_goes_away_is_no_longer_waited_for() -> None:
    t = tracker()
    t.add(1, acked=0.0, readers={"eu": frozenset({"a", "b"})})
    t.observe("eu", "a", None, sent=0.01, received=0.02)
    t.observe("eu", "a", 1, sent=0.05, received=0.06)
    assert t.lag("eu", 1.0) == pytest.approx(1.0)  # b has not seen it
    (done,) = t.retain("eu", frozenset({"a"}))  # b left the cluster
    assert done.lag == pytest.approx((0.01 + 0.06) / 2)  # a's bracket alone
    assert t.targets["eu"].pending == [] and t.targets["eu"].lost == 0
    assert not t.wants("eu", "b")
    assert t.lag("eu", 1.0) == pytest.approx(0.035)


def test_a_sentinel_no_remaining_reader_waits_for_is_dropped_not_lost() -> None:
    t = tracker(timeout=3.0)
    t.add(1, acked=0.0, readers={"eu": frozenset({"a"})})
    assert t.retain("eu", frozenset({None})) == []  # now read as a whole
    assert t.targets["eu"].pending == []
    t.expire(10.0)
    assert t.targets["eu"].lost == 0


def test_caught_up_counts_the_readers_that_returned_the_newest_sentinel() -> None:
    t = tracker()
    replicas = {"eu": frozenset({"a", "b", "c"})}
    assert t.caught_up("eu") is None  # no sentinel yet
    t.add(1, acked=0.0, readers=replicas)
    assert t.caught_up("eu") == 0
    t.observe("eu", "a", 1, sent=0.01, received=0.02)
    t.observe("eu", "b", None, sent=0.01, received=0.02)  # a failure or a miss
    assert t.caught_up("eu") == 1
    t.add(2, acked=1.0, readers=replicas)
    t.observe("eu", "b", 2, sent=1.01, received=1.02)
    t.observe("eu", "c", 1, sent=1.01, received=1.02)  # behind: the previous sentinel
    assert t.caught_up("eu") == 1
    t.observe("eu", "a", 1, sent=1.03, received=1.04)  # an older answer takes nothing back
    t.observe("eu", "a", 2, sent=1.05, received=1.06)
    assert t.caught_up("eu") == 2
    t.retain("eu", frozenset({"a", "c"}))  # b left
    assert t.caught_up("eu") == 1
    t.retain("eu", frozenset({"a", "b", "c"}))  # b is back: it starts from nothing
    assert t.caught_up("eu") == 1


def test_the_bounds_bracket_a_stall_whatever_its_phase() -> None:
    """A stall of 2 s starting anywhere in the sentinel second: the least and most the
    staleness can be contain it at the moment it ends."""
    for phase in (0.0, 0.25, 0.5, 0.75, 0.99):
        t = tracker()
        t.add(1, acked=0.0, readers=ONE)
        t.observe("eu", None, 1, sent=0.005, received=0.01)
        start, end = 1.0 + phase, 3.0 + phase
        for k in range(2, 5):  # acknowledged at 1, 2, 3 (after the stall began, or not)
            t.add(k, acked=k - 1.0, readers=ONE)
            if k - 1.0 < start:
                t.observe("eu", None, k, sent=k - 1.0 + 0.005, received=k - 1.0 + 0.01)
        t.observe("eu", None, None, sent=end - 0.03, received=end - 0.02)  # the last miss
        least, most = t.bounds("eu", end) or (None, None)
        assert least is not None and most is not None
        assert least <= end - start <= most, (phase, least, most)
        assert least >= end - start - 1.0 - 0.03
        assert most - least <= 1.0 + 0.03 + 1e-9  # a sentinel interval and the last read
        lag = t.lag("eu", end)
        assert lag is not None and least <= lag <= most


def test_with_nothing_unseen_the_bounds_are_the_last_bracket() -> None:
    t = tracker()
    assert t.bounds("eu", 0.0) is None
    t.add(1, acked=0.0, readers=ONE)
    assert t.bounds("eu", 0.5) == pytest.approx((0.0, None))  # no miss yet, nothing seen
    t.observe("eu", None, None, sent=0.4, received=0.41)
    assert t.bounds("eu", 0.5) == pytest.approx((0.4, None))  # missed 0.4 s in: that old
    t.observe("eu", None, None, sent=0.6, received=0.61)
    t.observe("eu", None, 1, sent=0.7, received=0.72)
    assert t.bounds("eu", 0.8) == pytest.approx((0.6, 0.72))
