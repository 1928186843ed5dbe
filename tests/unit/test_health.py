"""Health evaluation: raw verdicts, hysteresis, aggregation, groups and metrics (pure logic)."""

from __future__ import annotations

import itertools
import math

import pytest
from prometheus_client import CollectorRegistry

from exporter.health.hysteresis import Hysteresis
from exporter.health.metrics import HealthCollector
from exporter.health.readings import ProbeReading, probe_readings
from exporter.health.verdicts import Reason, Status, judge, worst
from exporter.results import Check, Observation
from tests.health_support import Harness, health_config, lag, statuses, write_path

# --- raw verdicts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        (write_path(1.0), Status.UP),
        (write_path(0.0), Status.DOWN),
        (write_path(None), Status.UNKNOWN),
        (lag(1.0), Status.UP),  # at the threshold is not beyond it
        (lag(1.001), Status.DEGRADED),
        (lag(0.0), Status.UP),
        (Observation(Check.READ_MODEL_SYNC_LAG, "orders_by_customer", 5.0), Status.UP),
        (Observation(Check.READ_MODEL_SYNC_LAG, "orders_by_customer", 5.2), Status.DOWN),
        (Observation(Check.COMMAND_LATENCY_P99, "us-east", 0.101), Status.DEGRADED),
        (Observation(Check.COMMAND_LATENCY_P99, "us-east", 0.099), Status.UP),
        (Observation(Check.QUERY_LATENCY_P99, "eu-west", 0.051), Status.DEGRADED),
        (Observation(Check.QUERY_LATENCY_P99, "eu-west", 0.2, sufficient=False), Status.UNKNOWN),
        # A failure rate is judged on its compared value (the interval's lower bound).
        (Observation(Check.SYNC_FAILURE_RATE, "order_totals", 0.004, compared=0.0005), Status.UP),
        (Observation(Check.SYNC_FAILURE_RATE, "order_totals", 0.004, compared=0.002),
         Status.DEGRADED),
    ],
)
def test_raw_verdict_follows_the_documented_defaults(
    observation: Observation, expected: Status
) -> None:
    assert judge(observation, health_config()) is expected


def test_severity_and_threshold_are_configurable() -> None:
    config = health_config(
        {
            "thresholds": {"replication_lag": "250ms"},
            "health": {"severities": {"replication_lag": "down", "write_path": "DEGRADED"}},
        }
    )
    assert judge(lag(0.3), config) is Status.DOWN
    assert judge(lag(0.2), config) is Status.UP
    assert judge(write_path(0.0), config) is Status.DEGRADED


def test_status_order_is_down_degraded_up_unknown() -> None:
    assert worst([Status.UP, Status.DOWN, Status.DEGRADED]) is Status.DOWN
    assert worst([Status.UP, Status.DEGRADED, Status.UNKNOWN]) is Status.DEGRADED
    assert worst([Status.UNKNOWN, Status.UP]) is Status.UP
    assert worst([]) is Status.UNKNOWN


# --- hysteresis ---------------------------------------------------------------------------


def test_a_breach_is_entered_only_after_raise_after_consecutive_readings() -> None:
    state = Hysteresis(raise_after=3, clear_after=2, since=0.0)
    assert state.step(Status.UP, 1.0) and state.status is Status.UP
    assert not state.step(Status.DOWN, 2.0)
    assert not state.step(Status.DOWN, 3.0)
    assert state.status is Status.UP
    assert state.step(Status.DOWN, 4.0)
    assert (state.status, state.since) == (Status.DOWN, 4.0)


def test_a_breach_is_left_only_after_clear_after_consecutive_clear_readings() -> None:
    state = Hysteresis(raise_after=1, clear_after=3, since=0.0)
    state.step(Status.DEGRADED, 1.0)
    assert state.status is Status.DEGRADED
    for t in (2.0, 3.0):
        assert not state.step(Status.UP, t)
    assert state.step(Status.UP, 4.0)
    assert (state.status, state.since) == (Status.UP, 4.0)


def test_an_interrupted_streak_starts_again() -> None:
    state = Hysteresis(raise_after=3, clear_after=3, since=0.0)
    state.step(Status.UP, 0.0)
    for raw in (Status.DOWN, Status.DOWN, Status.UP, Status.DOWN, Status.DOWN):
        state.step(raw, 1.0)
    assert state.status is Status.UP
    state.step(Status.DOWN, 2.0)
    assert state.status is Status.DOWN
    for raw in (Status.UP, Status.UP, Status.DOWN, Status.UP, Status.UP):
        state.step(raw, 3.0)
    assert state.status is Status.DOWN
    state.step(Status.UP, 4.0)
    assert state.status is Status.UP
    # No data in the middle of a breach streak interrupts it too.
    for raw in (Status.DOWN, Status.DOWN, Status.UNKNOWN, Status.DOWN, Status.DOWN):
        state.step(raw, 5.0)
    assert state.status is Status.UNKNOWN


def test_escalation_and_partial_recovery_take_the_level_every_reading_reached() -> None:
    state = Hysteresis(raise_after=3, clear_after=3, since=0.0)
    state.step(Status.UP, 0.0)
    for raw in (Status.DEGRADED, Status.DOWN, Status.DOWN):
        state.step(raw, 1.0)
    assert state.status is Status.DEGRADED  # only DEGRADED was reached 3 times running
    state.step(Status.DOWN, 2.0)
    assert state.status is Status.DOWN
    for raw in (Status.DEGRADED, Status.UP, Status.DEGRADED):
        state.step(raw, 3.0)
    assert state.status is Status.DEGRADED  # better than DOWN three times, not yet UP
    for raw in (Status.UP, Status.UP, Status.UP):
        state.step(raw, 4.0)
    assert state.status is Status.UP


def test_up_and_unknown_follow_the_reading_at_once() -> None:
    state = Hysteresis(raise_after=3, clear_after=3, since=0.0)
    assert state.step(Status.UP, 1.0) and state.status is Status.UP
    assert state.step(Status.UNKNOWN, 2.0) and state.status is Status.UNKNOWN


@pytest.mark.parametrize("start", [Status.UP, Status.DOWN])
def test_default_hysteresis_does_not_flap_at_a_50_percent_alternating_failure_pattern(
    start: Status,
) -> None:
    harness = Harness()
    # Settle into the starting state first.
    settle = 1.0 if start is Status.UP else 0.0
    for _ in range(5):
        harness.feed("reachability", write_path(settle))
    assert harness.status(Check.WRITE_PATH, "us-east") == start.value
    history = [
        harness.feed("reachability", write_path(value))
        for value in itertools.islice(itertools.cycle([0.0, 1.0]), 200)
    ]
    seen = statuses(history, Check.WRITE_PATH, "us-east")
    assert len(seen) == 200
    assert set(seen) == {start.value}, "the verdict changed under an alternating pattern"
    assert {s.overall.status for s in history} == {start}


def test_without_hysteresis_the_same_pattern_flaps() -> None:
    """Shows the pattern above is a real test: with N = M = 1 every reading flips the state."""
    harness = Harness(health_config({"health": {"raise_after": 1, "clear_after": 1}}))
    history = [
        harness.feed("reachability", write_path(value))
        for value in itertools.islice(itertools.cycle([0.0, 1.0]), 20)
    ]
    seen = statuses(history, Check.WRITE_PATH, "us-east")
    assert sum(1 for a, b in itertools.pairwise(seen) if a != b) == 19


def test_re_evaluating_the_same_reading_does_not_count_as_a_new_one() -> None:
    harness = Harness()
    harness.feed("reachability", write_path(1.0))
    harness.feed("reachability", write_path(0.0))
    for _ in range(20):  # many evaluations, no new probe run
        harness.tick()
    assert harness.status(Check.WRITE_PATH, "us-east") == "UP"
    harness.feed("reachability", write_path(0.0))
    harness.feed("reachability", write_path(0.0))
    assert harness.status(Check.WRITE_PATH, "us-east") == "DOWN"


def test_since_is_the_time_of_the_transition() -> None:
    harness = Harness()
    harness.feed("replication", lag(0.1))
    up_since = harness.evaluator.snapshot.overall.components[Check.REPLICATION_LAG][0].since
    for _ in range(5):
        harness.feed("replication", lag(0.2))
    item = harness.evaluator.snapshot.overall.components[Check.REPLICATION_LAG][0]
    assert item.since == up_since
    for _ in range(2):
        harness.feed("replication", lag(3.0))
    harness.feed("replication", lag(3.0))
    item = harness.evaluator.snapshot.overall.components[Check.REPLICATION_LAG][0]
    assert item.status is Status.DEGRADED
    assert item.since == harness.clock.time()
    assert harness.evaluator.snapshot.overall.checks[Check.REPLICATION_LAG].since == item.since
    assert harness.evaluator.snapshot.overall.since == item.since


# --- several probes on one check ----------------------------------------------------------


def test_the_write_path_takes_the_worst_new_write_side_reading() -> None:
    harness = Harness()
    for _ in range(3):
        harness.probe("reachability").report(write_path(1.0))
        harness.probe("replication").report(write_path(0.0))
        harness.tick()
    assert harness.status(Check.WRITE_PATH, "us-east") == "DOWN"


def test_a_stale_reading_from_another_probe_does_not_mask_a_new_failure() -> None:
    harness = Harness()
    harness.feed("reachability", write_path(1.0))  # then reachability goes quiet
    for _ in range(3):
        harness.feed("replication", write_path(0.0))
    assert harness.status(Check.WRITE_PATH, "us-east") == "DOWN"
    for _ in range(3):
        harness.feed("replication", write_path(1.0))
    assert harness.status(Check.WRITE_PATH, "us-east") == "UP"


# --- aggregation, groups, lifecycle -------------------------------------------------------


def test_the_aggregate_is_the_worst_component_after_hysteresis() -> None:
    harness = Harness()
    for _ in range(3):
        harness.probe("reachability").report(write_path(1.0))
        harness.probe("replication").report(lag(0.2, "ca-central"), lag(4.0, "eu-west"))
        snapshot = harness.tick()
    assert snapshot.overall.status is Status.DEGRADED
    assert snapshot.overall.checks[Check.WRITE_PATH].status is Status.UP
    assert snapshot.overall.checks[Check.REPLICATION_LAG].status is Status.DEGRADED
    assert [c.component for c in snapshot.overall.components[Check.REPLICATION_LAG]] == [
        "ca-central",
        "eu-west",
    ]


def test_a_group_judges_only_its_members() -> None:
    config = health_config(
        {
            "health": {
                "groups": {
                    "reads-ca-central": {
                        "checks": [
                            "replication_lag/ca-central",
                            "read_model_sync_lag/orders_by_customer",
                        ]
                    },
                    "replication": {"checks": ["replication_lag"]},
                }
            }
        }
    )
    harness = Harness(config)
    for _ in range(3):
        harness.probe("replication").report(lag(0.2, "ca-central"), lag(4.0, "eu-west"))
        snapshot = harness.tick()
    ca = snapshot.groups["reads-ca-central"]
    assert ca.status is Status.UP
    assert [c.component for c in ca.components[Check.REPLICATION_LAG]] == ["ca-central"]
    # The read model no probe reports yet shows as UNKNOWN instead of vanishing.
    (model,) = ca.components[Check.READ_MODEL_SYNC_LAG]
    assert (model.status, model.reason) == (Status.UNKNOWN, Reason.NO_DATA)
    assert snapshot.groups["replication"].status is Status.DEGRADED


def test_a_component_no_probe_reports_any_more_disappears() -> None:
    harness = Harness()
    harness.feed("replication", lag(0.2, "ca-central"), lag(0.2, "eu-west"))
    harness.feed("replication", lag(0.2, "ca-central"))
    components = harness.evaluator.snapshot.overall.components[Check.REPLICATION_LAG]
    assert [c.component for c in components] == ["ca-central"]


def test_a_probe_that_cannot_report_keeps_its_components() -> None:
    class Broken:
        name = "broken"

        def observations(self) -> tuple[Observation, ...]:
            raise RuntimeError("bug")

    harness = Harness()
    for _ in range(3):
        harness.feed("broken", lag(9.0))
    (reading,) = probe_readings([Broken()], lambda name: 4)
    assert reading.observations is None
    snapshot = harness.evaluator.evaluate([reading])
    assert snapshot.overall.checks[Check.REPLICATION_LAG].status is Status.DEGRADED


def test_no_observation_yet_is_unknown_with_a_reason() -> None:
    harness = Harness()
    snapshot = harness.feed("reachability", write_path(None))
    (item,) = snapshot.overall.components[Check.WRITE_PATH]
    assert (item.status, item.reason) == (Status.UNKNOWN, Reason.NO_DATA)
    assert snapshot.overall.status is Status.UNKNOWN
    few = Observation(Check.QUERY_LATENCY_P99, "eu-west", 0.01, samples=3, sufficient=False)
    snapshot = harness.feed("latency", few)
    (item,) = snapshot.overall.components[Check.QUERY_LATENCY_P99]
    assert (item.status, item.reason, item.samples) == (
        Status.UNKNOWN,
        Reason.INSUFFICIENT_SAMPLES,
        3,
    )


# --- metrics ------------------------------------------------------------------------------


def _registry(harness: Harness) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(lambda: harness.evaluator.snapshot, harness.config))
    return registry


def test_metrics_are_state_sets_with_every_status_present() -> None:
    harness = Harness(
        health_config({"health": {"groups": {"ca": {"checks": ["replication_lag/ca-central"]}}}})
    )
    registry = _registry(harness)
    # Before any reading every check exists, as UNKNOWN.
    for check in Check:
        assert registry.get_sample_value(
            "cqrs_health_status", {"check": check.value, "status": "UNKNOWN"}
        ) == 1.0
    for _ in range(3):
        harness.probe("reachability").report(write_path(1.0))
        harness.probe("replication").report(lag(2.0, "ca-central"), lag(0.1, "eu-west"))
        harness.tick()
    values = {
        status.value: registry.get_sample_value(
            "cqrs_health_status", {"check": "replication_lag", "status": status.value}
        )
        for status in Status
    }
    assert values == {"UP": 0.0, "DEGRADED": 1.0, "DOWN": 0.0, "UNKNOWN": 0.0}
    component = {"check": "replication_lag", "component": "eu-west", "status": "UP"}
    assert registry.get_sample_value("cqrs_health_component_status", component) == 1.0
    assert registry.get_sample_value(
        "cqrs_health_group_status", {"group": "ca", "status": "DEGRADED"}
    ) == 1.0
    assert registry.get_sample_value("cqrs_health_overall_status", {"status": "DEGRADED"}) == 1.0
    assert registry.get_sample_value(
        "cqrs_health_last_evaluation_timestamp_seconds"
    ) == pytest.approx(harness.clock.time())


def test_threshold_metric_carries_the_configured_thresholds_in_base_units() -> None:
    harness = Harness(health_config({"thresholds": {"query_latency_p99": "80ms"}}))
    registry = _registry(harness)
    expected = {
        "replication_lag": 1.0,
        "read_model_sync_lag": 5.0,
        "query_latency_p99": 0.080,
        "command_latency_p99": 0.100,
        "sync_failure_rate": 0.001,
    }
    for check, value in expected.items():
        got = registry.get_sample_value("cqrs_health_threshold", {"check": check})
        assert got is not None and math.isclose(got, value)
    assert registry.get_sample_value("cqrs_health_threshold", {"check": "write_path"}) is None


def test_readings_carry_the_probe_run_count() -> None:
    class Probe:
        name = "reachability"

        def observations(self) -> tuple[Observation, ...]:
            return (write_path(1.0),)

    assert probe_readings([Probe()], {"reachability": 7}.__getitem__) == [
        ProbeReading("reachability", 7, (write_path(1.0),))
    ]
