"""The health history: one sample per component per evaluation, downsampled into fixed slots."""

from __future__ import annotations

import math

import pytest

from exporter.health.history import HealthHistory, Slot
from exporter.health.monitor import HealthMonitor
from exporter.health.snapshot import ComponentHealth
from exporter.health.verdicts import Status
from exporter.results import Check, Observation
from tests.health_support import Harness


def component(
    check: Check,
    name: str,
    value: float | None,
    status: Status = Status.UP,
    compared: float | None = None,
) -> ComponentHealth:
    return ComponentHealth(
        check=check,
        component=name,
        status=status,
        since=0.0,
        reading=status,
        value=value,
        compared=compared,
        threshold=1.0,
        samples=None,
        reason=None,
    )


def lag(name: str, value: float | None, status: Status = Status.UP) -> ComponentHealth:
    return component(Check.REPLICATION_LAG, name, value, status)


def test_the_default_is_180_slots_of_five_seconds() -> None:
    history = HealthHistory()
    assert (history.slots, history.slot, history.window) == (180, 5.0, 900.0)


def test_a_slot_keeps_the_worst_value_and_the_worst_status_of_its_samples() -> None:
    history = HealthHistory(window=60, slot=5)
    for offset, value, status in [
        (0.0, 0.2, Status.UP),
        (1.0, 0.9, Status.DEGRADED),
        (2.0, 0.4, Status.UP),
        (4.9, None, Status.UNKNOWN),
    ]:
        history.record([lag("eu-west", value, status)], 100.0 + offset)
    series = history.series(Check.REPLICATION_LAG, "eu-west", 104.9)
    assert series.slots == [Slot(20, 0.9, Status.DEGRADED)]
    assert series.position(series.slots[0]) == series.length - 1 == 11


def test_for_the_write_path_the_worst_value_is_the_lowest() -> None:
    history = HealthHistory(window=60, slot=5)
    for offset, value in [(0.0, 1.0), (1.0, 0.0), (2.0, 1.0)]:
        history.record([component(Check.WRITE_PATH, "us-east", value)], 100.0 + offset)
    assert [s.value for s in history.series(Check.WRITE_PATH, "us-east", 102).slots] == [0.0]


def test_the_judged_value_is_recorded_and_a_value_that_is_not_finite_is_none() -> None:
    history = HealthHistory(window=60, slot=5)
    history.record(
        [
            component(Check.SYNC_FAILURE_RATE, "orders", 0.01, compared=0.0004),
            lag("eu-west", math.inf),
            lag("ca-central", math.nan),
        ],
        100.0,
    )
    assert history.series(Check.SYNC_FAILURE_RATE, "orders", 100).slots[0].value == 0.0004
    assert history.series(Check.REPLICATION_LAG, "eu-west", 100).slots[0].value is None
    assert history.series(Check.REPLICATION_LAG, "ca-central", 100).slots[0].value is None


def test_a_series_holds_the_window_only_oldest_first_however_long_it_runs() -> None:
    history = HealthHistory(window=60, slot=5)
    for second in range(0, 10_000):
        history.record([lag("eu-west", float(second))], float(second))
    series = history.series(Check.REPLICATION_LAG, "eu-west", 9_999.0)
    assert len(series.slots) == 12 == series.length
    assert [series.position(s) for s in series.slots] == list(range(12))
    # The worst (the last) sample of each of the twelve last slots.
    assert [s.value for s in series.slots] == [9944.0 + 5 * i for i in range(11)] + [9999.0]
    assert all(len(ring) == 12 for ring in history._rings.values())


def test_slots_without_an_evaluation_are_missing_and_old_ones_leave_the_window() -> None:
    history = HealthHistory(window=60, slot=5)
    history.record([lag("eu-west", 0.1)], 0.0)
    history.record([lag("eu-west", 0.2)], 30.0)
    series = history.series(Check.REPLICATION_LAG, "eu-west", 30.0)
    assert [(series.position(s), s.value) for s in series.slots] == [(5, 0.1), (11, 0.2)]
    later = history.series(Check.REPLICATION_LAG, "eu-west", 62.0)
    assert [(later.position(s), s.value) for s in later.slots] == [(5, 0.2)]
    assert history.series(Check.REPLICATION_LAG, "eu-west", 200.0).slots == []


def test_a_ring_slot_reused_after_a_full_window_starts_afresh() -> None:
    history = HealthHistory(window=60, slot=5)
    history.record([lag("eu-west", 5.0, Status.DOWN)], 0.0)
    history.record([lag("eu-west", 0.1)], 60.0)  # the same ring index, one window later
    series = history.series(Check.REPLICATION_LAG, "eu-west", 60.0)
    assert series.slots == [Slot(12, 0.1, Status.UP)]


def test_a_component_missing_from_an_evaluation_is_dropped() -> None:
    history = HealthHistory(window=60, slot=5)
    history.record([lag("eu-west", 0.1), lag("ca-central", 0.2)], 0.0)
    history.record([lag("ca-central", 0.3)], 1.0)
    assert set(history.keys()) == {(Check.REPLICATION_LAG, "ca-central")}
    assert history.series(Check.REPLICATION_LAG, "eu-west", 1.0).slots == []
    # Back again, it starts with no past.
    history.record([lag("eu-west", 0.4), lag("ca-central", 0.3)], 2.0)
    assert [s.value for s in history.series(Check.REPLICATION_LAG, "eu-west", 2).slots] == [0.4]


def test_an_empty_series_still_says_where_its_window_is() -> None:
    series = HealthHistory(window=60, slot=5).series(Check.WRITE_PATH, "us-east", 100.0)
    assert (series.first, series.length, series.slots) == (9, 12, [])


@pytest.mark.parametrize(("window", "slot"), [(60, 0), (4, 5), (60, -1)])
def test_a_window_must_hold_a_slot(window: float, slot: float) -> None:
    with pytest.raises(ValueError):
        HealthHistory(window=window, slot=slot)


def test_each_evaluation_of_the_monitor_records_every_component() -> None:
    harness = Harness()
    monitor = HealthMonitor(
        harness.evaluator, lambda: [p.reading() for p in harness.probes.values()], 1.0
    )
    probe = harness.probe("replication")
    for value in (0.2, 0.7, 0.3):
        probe.report(
            Observation(Check.REPLICATION_LAG, "eu-west", value),
            Observation(Check.REPLICATION_LAG, "ca-central", 0.1),
        )
        harness.clock.advance(1.0)
        monitor.evaluate_now()
    now = harness.clock.monotonic()
    assert set(monitor.history.keys()) == {
        (Check.REPLICATION_LAG, "eu-west"),
        (Check.REPLICATION_LAG, "ca-central"),
    }
    values = [s.value for s in monitor.history.series(Check.REPLICATION_LAG, "eu-west", now).slots]
    # FakeClock starts at 1000 s: the three evaluations at 1001-1003 s share a slot.
    assert values == [0.7]
    probe.report(Observation(Check.REPLICATION_LAG, "ca-central", 0.1))
    harness.clock.advance(1.0)
    monitor.evaluate_now()
    assert set(monitor.history.keys()) == {(Check.REPLICATION_LAG, "ca-central")}
