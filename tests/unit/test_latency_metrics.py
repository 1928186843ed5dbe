"""The latency probe's bookkeeping without Cassandra: streams, metrics, health readings.

Values are recorded straight into the probe's series (pure logic); the requests themselves
are proven on the testbed in test_latency_probe.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.results import Check, FailureReason
from probes.base import ProbeContext
from probes.latency.probe import LatencyProbe
from probes.latency.series import Operation
from probes.registry import KINDS

DATACENTERS = {"write": "us-east", "read": ["ca-central", "eu-west"]}


def make_probe(**latency: Any) -> LatencyProbe:
    config = parse_config(
        {
            "cluster": {"contact_points": ["127.0.0.1"]},
            "datacenters": DATACENTERS,
            "probes": {"latency": {"min_samples": 10, **latency}},
        }
    )
    context = ProbeContext(config, CassandraConnection(config), FakeClock())
    (probe,) = KINDS["latency"].build(context)
    assert isinstance(probe, LatencyProbe)
    return probe


def registry_for(probe: LatencyProbe) -> CollectorRegistry:
    class Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            return probe.collect()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())  # type: ignore[arg-type]
    return registry


def test_one_command_stream_and_one_query_stream_per_datacenter_and_declared_query() -> None:
    probe = make_probe(
        queries=[
            {
                "name": "orders",
                "cql": "SELECT * FROM shop.orders WHERE id = ?",
                "key_query": "SELECT id FROM shop.orders",
                "datacenters": ["eu-west"],
                "consistency": "LOCAL_QUORUM",
                "rate": 2,
            }
        ]
    )
    keys = {
        (s.key.operation, s.key.datacenter, s.key.query, s.key.consistency) for s in probe.series
    }
    assert keys == {
        (Operation.COMMAND, "us-east", "", "LOCAL_QUORUM"),
        (Operation.QUERY, "us-east", "", "LOCAL_ONE"),
        (Operation.QUERY, "ca-central", "", "LOCAL_ONE"),
        (Operation.QUERY, "eu-west", "", "LOCAL_ONE"),
        (Operation.QUERY, "eu-west", "orders", "LOCAL_QUORUM"),
    }
    declared = next(loop for loop in probe.loops if loop.series.key.query == "orders")
    assert declared.period == pytest.approx(0.5)
    assert len(probe.key_pools) == 1


def test_consistency_overrides_apply_to_the_probe_streams() -> None:
    probe = make_probe(command_consistency="EACH_QUORUM", query_consistency="LOCAL_QUORUM")
    assert probe.series_for(Operation.COMMAND, "us-east").key.consistency == "EACH_QUORUM"
    assert probe.series_for(Operation.QUERY, "eu-west").key.consistency == "LOCAL_QUORUM"


async def test_below_min_samples_the_reading_is_insufficient_not_a_breach() -> None:
    probe = make_probe()
    series = probe.series_for(Operation.QUERY, "eu-west")
    for _ in range(9):
        series.record_success(0.2)  # far above 50 ms, but only 9 samples
    await probe.run()
    readings = {(o.check, o.component): o for o in probe.observations()}
    reading = readings[(Check.QUERY_LATENCY_P99, "eu-west")]
    assert reading.value == pytest.approx(0.2, rel=0.001)
    assert reading.samples == 9 and not reading.sufficient
    series.record_success(0.2)
    await probe.run()
    readings = {(o.check, o.component): o for o in probe.observations()}
    assert readings[(Check.QUERY_LATENCY_P99, "eu-west")].sufficient
    # Streams without samples report no value at all.
    assert readings[(Check.COMMAND_LATENCY_P99, "us-east")].value is None
    assert readings[(Check.COMMAND_LATENCY_P99, "us-east")].samples == 0


async def test_metrics_carry_the_window_figures_and_counters_start_at_zero() -> None:
    probe = make_probe()
    registry = registry_for(probe)
    for dc in ("us-east", "ca-central", "eu-west"):
        for reason in FailureReason:
            labels = {"operation": "query", "cassandra_datacenter": dc, "reason": reason.value}
            assert registry.get_sample_value("cqrs_request_failures_total", labels) == 0
    labels = {"cassandra_datacenter": "eu-west", "query": ""}
    assert registry.get_sample_value("cqrs_query_latency_samples", labels) == 0
    assert registry.get_sample_value("cqrs_query_latency_p99_seconds", labels) is None

    series = probe.series_for(Operation.QUERY, "eu-west")
    for value in [0.002] * 97 + [0.07, 0.08, 0.09]:
        series.record_success(value)
    series.record_failure(FailureReason.TIMEOUT, "timed out")
    series.record_missed(2)
    await probe.run()

    assert registry.get_sample_value("cqrs_query_latency_samples", labels) == 103
    p99 = registry.get_sample_value("cqrs_query_latency_p99_seconds", labels)
    assert p99 == pytest.approx(1.0)  # 3 of 103 samples at the 1 s timeout
    assert registry.get_sample_value(
        "cqrs_query_latency_window_seconds", {**labels, "quantile": "0.5"}
    ) == pytest.approx(0.002, rel=0.001)
    # The window as a summary: its _count is the window's samples, its _sum their total.
    assert registry.get_sample_value("cqrs_query_latency_window_seconds_count", labels) == 103
    assert registry.get_sample_value(
        "cqrs_query_latency_window_seconds_sum", labels
    ) == pytest.approx(97 * 0.002 + 0.07 + 0.08 + 0.09 + 3 * 1.0, rel=0.01)
    assert registry.get_sample_value(
        "cqrs_request_failures_total",
        {"operation": "query", "cassandra_datacenter": "eu-west", "reason": "timeout"},
    ) == 1
    assert registry.get_sample_value(
        "cqrs_latency_missed_slots_total", {"operation": "query", "cassandra_datacenter": "eu-west"}
    ) == 2
    histogram = {**labels, "consistency": "LOCAL_ONE"}
    assert registry.get_sample_value("cqrs_query_duration_seconds_count", histogram) == 103
    assert registry.get_sample_value(
        "cqrs_query_duration_seconds_bucket", {**histogram, "le": "0.1"}
    ) == 100
    assert registry.get_sample_value(
        "cqrs_query_duration_seconds_bucket", {**histogram, "le": "1.0"}
    ) == 103
    assert registry.get_sample_value(
        "cqrs_command_duration_seconds_count",
        {"cassandra_datacenter": "us-east", "consistency": "LOCAL_QUORUM"},
    ) == 0


async def test_a_run_reports_the_latest_failure_once() -> None:
    probe = make_probe()
    for loop in probe.loops:
        loop.not_ready = None  # as if sending
    outcome = await probe.run()
    assert outcome.success
    probe.series_for(Operation.QUERY, "eu-west").record_failure(
        FailureReason.UNAVAILABLE, "no host available"
    )
    outcome = await probe.run()
    assert not outcome.success and outcome.reason is FailureReason.UNAVAILABLE
    assert "query in eu-west: 1 failed or missed" in outcome.detail
    assert (await probe.run()).success  # reported once, then clear


async def test_before_a_session_the_run_says_so() -> None:
    probe = make_probe()
    outcome = await probe.run()
    assert not outcome.success and outcome.reason is FailureReason.UNAVAILABLE
    assert "not started" in outcome.detail
