"""Regional heartbeat logic: age on the reader's wall clock, overdue time, when to read.

A fake clock and a stand-in connection (pure logic); the real cluster is exercised in
test_replication_cluster.py.
"""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.results import Check
from probes.base import ProbeContext
from probes.registry import KINDS
from probes.replication.heartbeat import HeartbeatProbe

Row = namedtuple("Row", "incarnation sequence written_at")

CONFIG = parse_config(
    {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["eu-west"], "local": "eu-west"},
        "probes": {
            "replication": {
                "mode": "regional",
                "interval": "1s",
                "timeout": "900ms",
                "sentinel_timeout": "10s",
            }
        },
    }
)


class SkewedClock(FakeClock):
    """A reader whose wall clock is `skew` seconds ahead of the writer's."""

    def __init__(self, skew: float) -> None:
        super().__init__()
        self.skew = skew

    def time(self) -> float:
        return super().time() + self.skew


class Heartbeats:
    """A stand-in connection whose eu-west replica holds one heartbeat row."""

    def __init__(self) -> None:
        self.written_at: float | None = None
        self.queries: list[dict[str, Any]] = []

    async def prepare(self, query: str) -> str:
        return query

    async def execute(self, query: str, params: Any = None, **kwargs: Any) -> list[Row]:
        self.queries.append(kwargs)
        if self.written_at is None:
            return []
        stamp = datetime.fromtimestamp(self.written_at, UTC).replace(tzinfo=None)
        return [Row(None, 1, stamp)]


def regional(clock: FakeClock) -> tuple[HeartbeatProbe, Heartbeats]:
    connection = Heartbeats()
    (probe,) = KINDS["replication"].build(ProbeContext(CONFIG, connection, clock))  # type: ignore[arg-type]
    assert isinstance(probe, HeartbeatProbe)
    return probe, connection


async def test_no_heartbeat_yet_is_unknown() -> None:
    probe, _ = regional(FakeClock())
    await probe._read(None)
    assert probe.age() is None
    (observation,) = probe.observations()
    assert observation.check is Check.REPLICATION_LAG
    assert (observation.component, observation.value) == ("eu-west", None)


async def test_age_grows_on_the_reader_clock_until_a_newer_heartbeat_shows() -> None:
    clock = FakeClock()
    probe, cassandra = regional(clock)
    cassandra.written_at = clock.time() - 0.3
    await probe._read(None)
    assert probe.age() == pytest.approx(0.3)
    assert probe.overdue() == 0.0
    clock.advance(2.0)
    assert probe.age() == pytest.approx(2.3)
    assert probe.overdue() == pytest.approx(1.3)
    cassandra.written_at = clock.time() - 0.05
    await probe._read(None)
    assert probe.age() == pytest.approx(0.05)


async def test_reads_are_pinned_to_the_local_datacenter_at_local_one() -> None:
    probe, cassandra = regional(FakeClock())
    await probe._read(None)
    (query,) = cassandra.queries
    assert query["datacenter"] == "eu-west"
    assert query["consistency"].value == "LOCAL_ONE"


async def test_clock_skew_enters_the_heartbeat_age_one_for_one() -> None:
    honest, skewed = FakeClock(), SkewedClock(0.25)
    ages = []
    for clock in (honest, skewed):
        probe, cassandra = regional(clock)
        cassandra.written_at = honest.time() - 0.1  # written by the writer's (honest) clock
        await probe._read(None)
        ages.append(probe.age())
    assert ages == pytest.approx([0.1, 0.35])


async def test_age_is_never_negative_when_the_reader_clock_is_behind() -> None:
    clock = SkewedClock(-0.5)
    probe, cassandra = regional(clock)
    cassandra.written_at = clock.time() + 0.4
    await probe._read(None)
    assert probe.age() == 0.0


async def test_an_older_heartbeat_from_a_stale_replica_does_not_turn_the_age_back() -> None:
    clock = FakeClock()
    probe, cassandra = regional(clock)
    cassandra.written_at = clock.time()
    await probe._read(None)
    cassandra.written_at = clock.time() - 5.0
    await probe._read(None)
    assert probe.age() == pytest.approx(0.0)


async def test_reads_wait_for_the_next_heartbeat_then_poll_and_back_off_when_long_overdue() -> None:
    clock = FakeClock()
    probe, cassandra = regional(clock)
    assert probe._due(None) <= 0  # nothing known: read at once
    cassandra.written_at = clock.time() - 0.2
    await probe._read(None)
    assert probe._due(None) == pytest.approx(0.8)  # the next one is due 1 s after the last
    clock.advance(0.9)
    assert probe._due(None) == 0.0  # overdue: poll every poll_interval
    clock.advance(11.0)  # overdue by more than sentinel_timeout: the writer is gone
    assert probe._due(None) == pytest.approx(1.0 - 11.9)
    await probe._read(None)
    assert probe._due(None) == pytest.approx(1.0)  # once per interval from now on
