"""Replication lag sentinels against the real three-datacenter testbed, with real faults."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from exporter.results import Check
from probes.replication.backlog import ReplicationBacklogProbe
from probes.replication.writer import WriterProbe
from tests.support import RunningExporter, answering_connection, poll_until, serve_exporter

pytestmark = pytest.mark.cluster

WRITE, CA, EU = "us-east", "ca-central", "eu-west"
POLL = 0.05
HEALTHY = 0.2


async def ensure_schema_retrying(config: Any) -> None:
    """Create the monitoring schema (the exporter checks it once, at start)."""
    from exporter.schema import ensure_schema

    connection = await answering_connection(config)
    try:
        await ensure_schema(config, connection)
    finally:
        await connection.close()


@pytest.fixture(autouse=True)
async def monitoring_schema(testbed_config: dict[str, Any]) -> None:
    """The default monitoring keyspace exists before an exporter relies on finding it."""
    from exporter.config import parse_config

    await ensure_schema_retrying(parse_config(testbed_config))


def pair(target: str) -> dict[str, str]:
    return {"source_datacenter": WRITE, "target_datacenter": target}


def replication_config(make_config: Callable[..., dict[str, Any]], **replication: Any) -> Any:
    return make_config(
        {
            "monitoring": {"writer_id": f"test-{uuid.uuid4().hex[:8]}"},
            "probes": {"replication": replication, "latency": {"enabled": False}},
        }
    )


def probe_of(running: RunningExporter) -> WriterProbe:
    (probe,) = [p for p in running.exporter.probes if isinstance(p, WriterProbe)]
    return probe


def lag(running: RunningExporter, target: str) -> float | None:
    return running.sample("cqrs_replication_lag_seconds", pair(target))


async def settled(running: RunningExporter) -> None:
    """Wait until both read datacenters report a lag under the healthy bound."""

    def both_healthy() -> bool:
        values = [lag(running, dc) for dc in (CA, EU)]
        return all(v is not None and v < HEALTHY for v in values)

    await poll_until(both_healthy, timeout=90, interval=0.1, message="both read DCs healthy")


async def record(
    running: RunningExporter, seconds: float, into: list[tuple[float, float, float]]
) -> None:
    """Sample (monotonic time, ca-central lag, eu-west lag) every 20 ms, as /metrics shows them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ca, eu = lag(running, CA), lag(running, EU)
        assert ca is not None and eu is not None
        into.append((time.monotonic(), ca, eu))
        await asyncio.sleep(0.02)


async def next_sentinel(probe: WriterProbe) -> None:
    """Return just after the scheduler's next sentinel is acknowledged."""
    written = probe.written
    await poll_until(lambda: probe.written > written, timeout=10, interval=0.002)


def assert_mostly_under(values: list[float], bound: float, ceiling: float = 1.0) -> None:
    """At least 95% of samples under `bound`, none over `ceiling`: this busy shared host
    stalls now and then (the stall shows in every datacenter at once)."""
    ordered = sorted(values)
    assert ordered[int(0.95 * (len(ordered) - 1))] < bound, ordered[-10:]
    assert ordered[-1] < ceiling, ordered[-10:]


def slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


async def test_healthy_cluster_keeps_every_read_datacenter_under_200ms(
    make_config: Callable[..., dict[str, Any]],
) -> None:
    async with serve_exporter(replication_config(make_config)) as running:
        await settled(running)
        samples: list[tuple[float, float, float]] = []
        await record(running, 8.0, samples)
        for column in (1, 2):
            values = [s[column] for s in samples]
            assert_mostly_under(values, HEALTHY)
            assert sorted(values)[len(values) // 2] < HEALTHY / 2
        for dc in (CA, EU):
            count = running.sample("cqrs_replication_visibility_seconds_count", pair(dc))
            assert count is not None and count >= 8
            assert running.sample("cqrs_replication_sentinels_lost_total", pair(dc)) == 0
            resolution = running.sample("cqrs_replication_lag_resolution_seconds", pair(dc))
            assert resolution is not None and 0 < resolution < 0.5
        readings = {o.component: o.value for o in probe_of(running).observations()}
        assert set(readings) == {CA, EU}
        assert all(o.check is Check.REPLICATION_LAG for o in probe_of(running).observations())
        assert all(v is not None and v < 1.0 for v in readings.values()), readings  # UP
        status, text = await running.get("/metrics")
        assert status == 200
        for name in (
            'cqrs_replication_lag_seconds{source_datacenter="us-east",target_datacenter="eu-west"}',
            "cqrs_replication_visibility_seconds_bucket{",
            "cqrs_replication_sentinels_lost_total{",
            "cqrs_replication_lag_resolution_seconds{",
        ):
            assert name in text


async def test_per_replica_mode_reads_through_each_node_of_each_read_datacenter(
    make_config: Callable[..., dict[str, Any]],
) -> None:
    config = replication_config(make_config, read_mode="per_replica")
    async with serve_exporter(config) as running:
        await settled(running)
        samples: list[tuple[float, float, float]] = []
        await record(running, 3.0, samples)
        assert_mostly_under([max(s[1], s[2]) for s in samples], HEALTHY)
        connection = running.exporter.connection
        expected = {(dc, str(h.endpoint)) for dc in (CA, EU) for h in connection.hosts(dc)}
        assert len(expected) == 2
        assert set(probe_of(running).readers) == expected
        for dc in (CA, EU):  # one node per datacenter, at replication factor 1
            assert running.sample("cqrs_replication_replicas", pair(dc)) == 1


@pytest.mark.fault
async def test_paused_read_datacenter_lag_rises_steadily_and_recovers_within_two_rounds(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: Any
) -> None:
    pause_for = 3.0
    async with serve_exporter(replication_config(make_config)) as running:
        probe = probe_of(running)
        await settled(running)
        samples: list[tuple[float, float, float]] = []
        await next_sentinel(probe)  # the next scheduled one is ~1 s away
        paused_at = time.monotonic()
        await asyncio.to_thread(healthy_testbed.pause, EU)
        try:
            # A sentinel written as the pause begins: its true lag is the pause's length.
            outcome = await running.exporter.runner.run_once(probe)
            assert outcome.success or outcome.detail.startswith("reads in eu-west fail")
            await record(running, pause_for - (time.monotonic() - paused_at), samples)
        finally:
            resumed_at = time.monotonic()
            await asyncio.to_thread(healthy_testbed.resume, EU)
        paused_for = resumed_at - paused_at
        await record(running, 4.0, samples)

    during = [(t, eu) for t, _, eu in samples if paused_at + 0.3 <= t <= resumed_at]
    assert len(during) >= 50
    rate = slope(during)
    assert 0.9 <= rate <= 1.1, f"eu-west lag grew at {rate:.2f} s per second during the pause"
    peak = max(eu for _, _, eu in samples)
    assert abs(peak - paused_for) <= POLL + 0.150, (peak, paused_for)
    assert_mostly_under([ca for _, ca, _ in samples], HEALTHY)
    back = next(t for t, _, eu in samples if t > resumed_at and eu < HEALTHY)
    assert_mostly_under([eu for t, _, eu in samples if t >= back], HEALTHY)
    assert back - resumed_at <= 2 * 1.0, f"eu-west took {back - resumed_at:.2f} s to recover"


@pytest.mark.fault
@pytest.mark.parametrize("phase", [0.3, 0.7])
async def test_the_bounds_contain_a_stall_that_starts_between_sentinels(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: Any, phase: float
) -> None:
    """eu-west paused 2 s, `phase` of a sentinel interval after a sentinel: the least the
    staleness can be never passes the stall, the most reaches it."""
    pause_for = 2.0
    bounds: list[tuple[float, float | None, float | None]] = []

    async def sample_bounds(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            bounds.append((
                time.monotonic(),
                running.sample("cqrs_replication_lag_lower_bound_seconds", pair(EU)),
                running.sample("cqrs_replication_lag_upper_bound_seconds", pair(EU)),
            ))
            await asyncio.sleep(0.02)

    async with serve_exporter(replication_config(make_config)) as running:
        probe = probe_of(running)
        await settled(running)
        await next_sentinel(probe)
        await sample_bounds(phase)  # the stall's phase against the sentinel schedule
        paused_at = time.monotonic()
        await asyncio.to_thread(healthy_testbed.pause, EU)
        try:
            await sample_bounds(pause_for - (time.monotonic() - paused_at))
        finally:
            resumed_at = time.monotonic()
            await asyncio.to_thread(healthy_testbed.resume, EU)
        await sample_bounds(3.0)

    paused_for = resumed_at - paused_at
    assert all(least is not None and most is not None for _, least, most in bounds), bounds[:5]
    least_peak = max(least or 0.0 for _, least, _ in bounds)
    most_peak = max(most or 0.0 for _, _, most in bounds)
    # Resumed, the node needs a moment before it serves the sentinels: allow one poll and
    # a read's round trip on top of the pause, and as much below.
    assert least_peak <= paused_for + POLL + 0.150, (least_peak, paused_for)
    assert most_peak >= paused_for - 0.05, (most_peak, paused_for)
    assert all(
        least <= most for _, least, most in bounds if least is not None and most is not None
    )


@pytest.mark.fault
async def test_killed_read_datacenter_lag_keeps_rising_counts_losses_and_recovers(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: Any
) -> None:
    config = replication_config(
        make_config, sentinel_timeout="3s", backlog={"interval": "3s", "timeout": "2s"}
    )
    async with serve_exporter(config) as running:
        (backlog,) = [p for p in running.exporter.probes if isinstance(p, ReplicationBacklogProbe)]
        await settled(running)
        await asyncio.to_thread(healthy_testbed.kill, EU)
        killed_at = time.monotonic()

        readings = []
        for _ in range(4):
            await asyncio.sleep(2.0)
            lost = running.sample("cqrs_replication_sentinels_lost_total", pair(EU))
            readings.append((lag(running, EU), lost))
        lags = [r[0] for r in readings]
        losses = [r[1] for r in readings]
        assert all(value is not None for value in lags)
        assert lags == sorted(lags) and lags[-1] > 6.0, lags  # well past the 3 s sentinel timeout
        assert losses[-1] is not None and losses[-1] >= 3 and losses == sorted(losses), losses
        assert (lag(running, CA) or 1.0) < 1.0  # ca-central is unaffected

        # Cassandra's own view: a backlog toward the dead datacenter builds up, as messages
        # queued for it, or as hint files (which show once Cassandra closes them for delivery).
        def backlog_toward_eu() -> bool:
            queued = running.sample("cqrs_replication_internode_pending_messages", pair(EU))
            hints = running.sample("cqrs_replication_hints_pending_files", pair(EU))
            return (queued or 0) > 0 or (hints or 0) > 0

        await poll_until(
            backlog_toward_eu, timeout=120, interval=0.5, message="a backlog toward eu-west"
        )
        assert backlog.available is not None and "pending_hints" in backlog.available
        assert lag(running, EU) > time.monotonic() - killed_at - 2.0  # still rising

        await asyncio.to_thread(healthy_testbed.start, EU)
        started_at = time.monotonic()
        await poll_until(
            lambda: (lag(running, EU) or 1.0) < HEALTHY,
            timeout=60,
            interval=0.1,
            message="eu-west back under 200 ms after the restart",
        )
        assert time.monotonic() - started_at < 60


async def test_thousand_rounds_leave_one_live_row_per_writer_and_datacenter(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any
) -> None:
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    from exporter.config import parse_config
    from probes.base import ProbeContext

    keyspace = f"r3_rounds_{uuid.uuid4().hex[:8]}"
    writers = ("writer-a", "writer-b")
    configs = [
        parse_config(
            make_config(
                {
                    "monitoring": {"keyspace": keyspace, "writer_id": writer},
                    "probes": {"replication": {"interval": "2s", "timeout": "1500ms"}},
                }
            )
        )
        for writer in writers
    ]
    await ensure_schema_retrying(configs[0])
    connection = await answering_connection(configs[0])
    try:
        probes = [
            WriterProbe(ProbeContext(c, connection), c.probes.replication) for c in configs
        ]
        for _ in range(1000):
            # No scheduler: rounds back to back, each bounded generously for a busy host.
            outcomes = await asyncio.gather(*(asyncio.wait_for(p.run(), 10.0) for p in probes))
            # A visibility read may time out on a busy host; the writes must not.
            assert all(o.success or o.detail.startswith("reads in") for o in outcomes), outcomes
        assert all(p.written == 1000 for p in probes)
        for probe in probes:
            await poll_until(
                lambda probe=probe: all(not probe.tracker.targets[dc].pending for dc in (CA, EU)),
                timeout=30,
                message="every sentinel seen",
            )
            for dc in (CA, EU):
                state = probe.tracker.targets[dc]
                assert state.lost == 0
                assert state.visibility.count == 1000
        for probe in probes:
            await probe.stop()
    finally:
        await connection.close()

    profiles = {
        dc: ExecutionProfile(
            load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=dc),
            consistency_level=ConsistencyLevel.LOCAL_ONE,
        )
        for dc in (WRITE, CA, EU)
    }
    cluster = Cluster(
        list(testbed_cluster.contact_points),
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profiles[WRITE], **profiles},
    )
    session = await asyncio.to_thread(cluster.connect, wait_for_all_pools=True)
    try:
        for dc in (WRITE, CA, EU):
            rows = session.execute(
                f"SELECT writer_id, source_datacenter, sequence FROM {keyspace}."
                "replication_sentinels",
                execution_profile=dc,
            )
            assert sorted((r.writer_id, r.source_datacenter, r.sequence) for r in rows) == [
                ("writer-a", WRITE, 1000),
                ("writer-b", WRITE, 1000),
            ], dc
            # Overwrites leave no tombstones: a traced read meets one live row and none dead.
            for writer in writers:
                future = session.execute_async(
                    f"SELECT * FROM {keyspace}.replication_sentinels "
                    "WHERE writer_id = %s AND source_datacenter = %s",
                    (writer, WRITE),
                    trace=True,
                    execution_profile=dc,
                )
                future.result()
                # The trace lives in system_traces, which need not have a replica in `dc`.
                trace = future.get_query_trace(max_wait=10, query_cl=ConsistencyLevel.ONE)
                reads = [e.description for e in trace.events if "live rows and" in e.description]
                assert reads, dc
                assert all(e.startswith("Read 1 live rows and 0 tombstone") for e in reads), reads
    finally:
        await asyncio.to_thread(cluster.shutdown)


async def test_regional_exporter_reports_the_writer_heartbeat_age(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: Any
) -> None:
    from probes.replication.heartbeat import HeartbeatProbe

    writer_id = f"test-{uuid.uuid4().hex[:8]}"
    writer = make_config(
        {"monitoring": {"writer_id": writer_id}, "probes": {"latency": {"enabled": False}}}
    )
    regional = make_config(
        {
            "monitoring": {"writer_id": writer_id},
            "datacenters": {"local": EU},
            "probes": {"replication": {"mode": "regional"}, "latency": {"enabled": False}},
        }
    )
    async with serve_exporter(writer) as writing, serve_exporter(regional) as reading:
        (heartbeat,) = [p for p in reading.exporter.probes if isinstance(p, HeartbeatProbe)]
        assert not [p for p in reading.exporter.probes if isinstance(p, WriterProbe)]

        def age() -> float | None:
            return reading.sample("cqrs_replication_heartbeat_age_seconds", pair(EU))

        await poll_until(age, timeout=90, message="a heartbeat age")
        await settled(writing)
        ages = []
        for _ in range(60):
            ages.append(age())
            await asyncio.sleep(0.05)
        # Up to one writer interval plus the polling and the (small, local) clock difference.
        assert all(a is not None for a in ages)
        assert_mostly_under([a for a in ages if a is not None], 1.0 + 0.3, ceiling=2.0)
        assert (heartbeat.overdue() or 0.0) < 1.0  # UP
        assert reading.sample("cqrs_replication_lag_seconds", pair(EU)) is None

        # The write datacenter stalls: no new heartbeat, so the regional age climbs.
        await asyncio.to_thread(healthy_testbed.pause, WRITE)
        stalled_at = time.monotonic()
        try:
            points = []
            while time.monotonic() - stalled_at < 4.0:
                value = age()
                assert value is not None
                points.append((time.monotonic(), value))
                await asyncio.sleep(0.05)
            (observation,) = heartbeat.observations()  # what /health judges, mid-stall
        finally:
            await asyncio.to_thread(healthy_testbed.resume, WRITE)
        late = [p for p in points if p[0] - stalled_at > 1.5]
        assert 0.9 <= slope(late) <= 1.1
        assert points[-1][1] > 3.5
        assert observation.check is Check.REPLICATION_LAG and observation.component == EU
        assert observation.value is not None and observation.value > 2.0  # over the 1 s threshold
        await poll_until(
            lambda: (age() or 9.0) < 1.0 + 0.3, timeout=30, message="heartbeat fresh again"
        )
