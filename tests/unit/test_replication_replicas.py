"""Per-replica reads: each replica read through itself, the worst one's lag, caught-up counts,
replicas that leave, and the switch between read modes.

A fake clock, a stand-in connection whose token map and replica copies the test sets, and
pollers that never run by themselves: each read is made by the test (pure logic). The
connection's replica lookup itself runs on the driver's own metadata classes, without a
cluster. The real cluster is exercised in tests/cluster/test_replication_cluster.py and
tests/production/test_replicas.py.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from datetime import UTC, datetime
from typing import Any

import pytest
from cassandra import OperationTimedOut
from cassandra.connection import DefaultEndPoint
from cassandra.cqltypes import UTF8Type
from cassandra.metadata import KeyspaceMetadata, Metadata
from cassandra.policies import SimpleConvictionPolicy
from cassandra.pool import Host as DriverHost
from cassandra.protocol import ColumnMetadata
from cassandra.query import PreparedStatement

from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.connection import CassandraConnection
from probes.base import ProbeContext
from probes.registry import KINDS
from probes.replication import heartbeat, writer
from probes.replication.heartbeat import HeartbeatProbe
from probes.replication.writer import WriterProbe

Host = namedtuple("Host", "endpoint datacenter is_up")
Row = namedtuple("Row", "incarnation sequence written_at")

WRITE, CA, EU = "us-east", "ca-central", "eu-west"
SOURCE = {"source_datacenter": WRITE}


def config(read_mode: str = "per_replica", **extra: Any) -> Any:
    replication: dict[str, Any] = {"read_mode": read_mode, "sentinel_timeout": "10s"}
    datacenters: dict[str, Any] = {"write": WRITE, "read": [CA, EU]}
    if extra.get("regional"):
        replication["mode"] = "regional"
        datacenters["local"] = EU
    return parse_config(
        {
            "cluster": {"contact_points": ["127.0.0.1"]},
            "datacenters": datacenters,
            "probes": {"replication": replication},
        }
    )


class Ring:
    """A stand-in connection: a token map (replicas per datacenter) and each replica's copy.

    A write lands in the write datacenter only; `replicate(address)` copies the newest row
    to one replica, as Cassandra would when that replica gets the mutation.
    """

    def __init__(self, replicas: dict[str, list[str]]) -> None:
        self.token_map = {
            dc: [Host(address, dc, True) for address in addresses]
            for dc, addresses in replicas.items()
        }
        self.newest: Row | None = None
        self.copies: dict[str, Row] = {}
        self.failing: set[str] = set()
        self.reads: list[dict[str, Any]] = []
        self.lookups = 0

    def replicas(self, statement: Any, parameters: Any, datacenter: str) -> list[Host]:
        self.lookups += 1
        return list(self.token_map.get(datacenter, []))

    def leave(self, address: str) -> None:
        for dc, hosts in self.token_map.items():
            self.token_map[dc] = [h for h in hosts if h.endpoint != address]

    def replicate(self, *addresses: str) -> None:
        assert self.newest is not None
        for address in addresses:
            self.copies[address] = self.newest

    async def prepare(self, query: str) -> str:
        return query

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> list[Row]:
        if kwargs.get("write"):
            _, _, incarnation, sequence, written_at_ms = params
            stamp = datetime.fromtimestamp(written_at_ms / 1000, UTC).replace(tzinfo=None)
            self.newest = Row(incarnation, sequence, stamp)
            return []
        self.reads.append(kwargs)
        host = kwargs.get("host")
        address = host.endpoint if host is not None else None
        if address in self.failing:
            raise OperationTimedOut("stalled")
        row = self.copies.get(address) if address is not None else self.newest
        return [row] if row is not None else []


class IdlePoller:
    """Stands in for CadencedPoller: records what the probe asks of it, reads nothing."""

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name = name
        self.wakes = 0
        self.stopped = False

    def start(self) -> None:
        pass

    def wake(self) -> None:
        self.wakes += 1

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture(autouse=True)
def idle_pollers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "CadencedPoller", IdlePoller)
    monkeypatch.setattr(heartbeat, "CadencedPoller", IdlePoller)


def build(cfg: Any, ring: Ring, clock: FakeClock) -> Any:
    (probe,) = KINDS["replication"].build(ProbeContext(cfg, ring, clock))  # type: ignore[arg-type]
    return probe


def sentinel_writer(
    ring: Ring, clock: FakeClock | None = None, read_mode: str = "per_replica"
) -> WriterProbe:
    probe = build(config(read_mode), ring, clock or FakeClock())
    assert isinstance(probe, WriterProbe)
    return probe


def samples(probe: Any) -> dict[tuple[str, str], float]:
    """(metric, target datacenter) -> value, for the gauges of one source datacenter."""
    return {
        (s.name, s.labels["target_datacenter"]): s.value
        for family in probe.collect()
        for s in family.samples
        if "target_datacenter" in s.labels and not {"reason", "le"} & set(s.labels)
    }


def replicas(probe: Any, dc: str) -> tuple[float | None, float | None]:
    values = samples(probe)
    return (
        values.get(("cqrs_replication_replicas", dc)),
        values.get(("cqrs_replication_replicas_caught_up", dc)),
    )


TWO_EACH = {WRITE: ["10.0.0.1"], CA: ["10.0.1.1", "10.0.1.2"], EU: ["10.0.2.1", "10.0.2.2"]}


async def test_each_replica_of_each_read_datacenter_is_read_through_itself() -> None:
    ring = Ring(TWO_EACH)
    probe = sentinel_writer(ring)
    assert (await probe.run()).success
    assert set(probe.readers) == {
        (CA, "10.0.1.1"), (CA, "10.0.1.2"), (EU, "10.0.2.1"), (EU, "10.0.2.2")
    }
    assert all(p.wakes == 1 for p in probe._pollers.values())
    await probe._read(EU, "10.0.2.2")
    (read,) = ring.reads
    assert read["host"] == Host("10.0.2.2", EU, True)
    assert read["datacenter"] == EU
    assert read["consistency"].value == "LOCAL_ONE"  # the pinned replica's own datacenter


async def test_the_lag_is_the_worst_replicas_and_caught_up_counts_the_replicas_with_it() -> None:
    clock = FakeClock()
    ring = Ring(TWO_EACH)
    probe = sentinel_writer(ring, clock)
    await probe._refresh_readers()
    assert replicas(probe, EU) == (2, None)  # replicas known, no sentinel yet
    await probe.run()
    ring.replicate("10.0.2.1", "10.0.1.1", "10.0.1.2")
    clock.advance(0.1)
    for address in ("10.0.2.1", "10.0.2.2"):
        await probe._read(EU, address)
    await probe._read(CA, "10.0.1.1")
    await probe._read(CA, "10.0.1.2")
    clock.advance(0.2)
    # 10.0.2.2 has not seen the sentinel: eu-west's lag is its (growing) one.
    assert probe.lag(EU) == pytest.approx(0.3)
    assert probe.lag(CA) == pytest.approx(0.05)
    assert replicas(probe, EU) == (2, 1)
    assert replicas(probe, CA) == (2, 2)
    ring.replicate("10.0.2.2")
    await probe._read(EU, "10.0.2.2")
    # Seen between its last miss (0.1) and its first hit (0.3): the worst replica's midpoint.
    assert probe.lag(EU) == pytest.approx(0.2)
    assert replicas(probe, EU) == (2, 2)
    values = samples(probe)
    assert values[("cqrs_replication_lag_seconds", EU)] == pytest.approx(0.2)
    # The next sentinel: nobody has it until it is read again.
    await probe.run()
    assert replicas(probe, EU) == (2, 0)


async def test_no_series_names_a_host() -> None:
    ring = Ring(TWO_EACH)
    probe = sentinel_writer(ring)
    await probe.run()
    ring.failing.add("10.0.2.2")
    await probe._read(EU, "10.0.2.2")
    allowed = {"source_datacenter", "target_datacenter", "reason", "le"}
    for family in probe.collect():
        for sample in family.samples:
            assert set(sample.labels) <= allowed
            assert not [v for v in sample.labels.values() if v.startswith("10.0.")]


async def test_a_replica_that_left_is_no_longer_read_waited_for_or_counted() -> None:
    clock = FakeClock()
    ring = Ring(TWO_EACH)
    probe = sentinel_writer(ring, clock)
    await probe.run()
    ring.replicate("10.0.2.1")
    ring.failing.add("10.0.2.2")
    clock.advance(0.05)
    await probe._read(EU, "10.0.2.1")
    await probe._read(EU, "10.0.2.2")
    clock.advance(1.0)
    assert probe.lag(EU) == pytest.approx(1.05)
    outcome = await probe.run()
    assert not outcome.success and "eu-west" in outcome.detail
    poller = probe._pollers[(EU, "10.0.2.2")]

    ring.leave("10.0.2.2")  # decommissioned: gone from the driver's metadata
    outcome = await probe.run()
    assert outcome.success  # its failures went with it
    assert poller.stopped and (EU, "10.0.2.2") not in probe.readers
    assert probe.replicas.host("10.0.2.2") is None
    assert replicas(probe, EU) == (1, 0)
    # The first sentinel no longer waits for it: seen when the remaining replica saw it.
    state = probe.tracker.targets[EU]
    assert [p.sequence for p in state.pending] == [2, 3] and state.visibility.count == 1
    assert all(p.readers == {"10.0.2.1"} for p in state.pending)
    # Sentinel 2 was acknowledged just now: sentinel 1's lag (seen 0.05 s in, midpoint) holds.
    assert probe.lag(EU) == pytest.approx(0.025)
    clock.advance(0.01)
    ring.replicate("10.0.2.1")
    await probe._read(EU, "10.0.2.1")
    assert replicas(probe, EU) == (1, 1)
    assert probe.lag(EU) == pytest.approx(0.005)


async def test_a_replica_that_joins_is_read_from_the_next_round() -> None:
    ring = Ring(TWO_EACH)
    probe = sentinel_writer(ring)
    await probe.run()
    ring.token_map[EU].append(Host("10.0.2.3", EU, True))
    await probe.run()
    assert (EU, "10.0.2.3") in probe.readers
    assert replicas(probe, EU) == (3, 0)
    # The sentinel written before it joined does not wait for it; the new one does.
    pending = {p.sequence: p.readers for p in probe.tracker.targets[EU].pending}
    assert "10.0.2.3" not in pending[1] and "10.0.2.3" in pending[2]


async def test_a_datacenter_without_known_replicas_is_read_as_a_whole_until_they_are_known(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ring = Ring({WRITE: ["10.0.0.1"], CA: ["10.0.1.1"]})  # eu-west not in the token map yet
    probe = sentinel_writer(ring)
    with caplog.at_level(logging.WARNING):
        await probe.run()
        await probe.run()
    warned = "no replica of the sentinel row in eu-west"
    warnings = [r for r in caplog.records if warned in r.getMessage()]
    assert len(warnings) == 1
    assert (EU, None) in probe.readers and (CA, "10.0.1.1") in probe.readers
    assert replicas(probe, EU) == (None, None)  # not read per replica: no counts
    whole = probe._pollers[(EU, None)]
    ring.token_map[EU] = [Host("10.0.2.1", EU, True)]
    await probe.run()
    assert whole.stopped and set(probe.readers) == {(CA, "10.0.1.1"), (EU, "10.0.2.1")}
    assert replicas(probe, EU) == (1, 0)


async def test_local_one_mode_reads_each_datacenter_once_and_counts_no_replicas() -> None:
    ring = Ring(TWO_EACH)
    probe = sentinel_writer(ring, read_mode="local_one")
    await probe.run()
    assert set(probe.readers) == {(CA, None), (EU, None)}
    assert ring.lookups == 0  # the token map is not consulted
    await probe._read(EU, None)
    (read,) = ring.reads
    assert read["host"] is None and read["consistency"].value == "LOCAL_ONE"
    assert probe.lag(EU) == pytest.approx(0.0)
    names = {family.name for family in probe.collect()}
    assert "cqrs_replication_lag_seconds" in names
    assert not {"cqrs_replication_replicas", "cqrs_replication_replicas_caught_up"} & names


# --- regional mode ------------------------------------------------------------------------


def regional(ring: Ring, clock: FakeClock) -> HeartbeatProbe:
    probe = build(config(regional=True), ring, clock)
    assert isinstance(probe, HeartbeatProbe)
    return probe


def heartbeat_at(ring: Ring, address: str, written_at: float) -> None:
    stamp = datetime.fromtimestamp(written_at, UTC).replace(tzinfo=None)
    ring.copies[address] = Row(None, 1, stamp)


async def test_regional_age_is_the_stalest_replicas_and_a_replica_that_left_is_dropped() -> None:
    clock = FakeClock()
    ring = Ring({EU: ["10.0.2.1", "10.0.2.2"]})
    probe = regional(ring, clock)
    await probe.run()
    assert set(probe._pollers) == {"10.0.2.1", "10.0.2.2"}
    heartbeat_at(ring, "10.0.2.1", clock.time() - 0.1)
    heartbeat_at(ring, "10.0.2.2", clock.time() - 3.0)
    for address in ("10.0.2.1", "10.0.2.2"):
        await probe._read(address)
    assert (await probe.run()).success
    assert probe.age() == pytest.approx(3.0)
    assert replicas(probe, EU) == (2, 1)
    ring.leave("10.0.2.2")
    await probe.run()
    assert probe.age() == pytest.approx(0.1)
    assert replicas(probe, EU) == (1, 1)
    assert set(probe._pollers) == {"10.0.2.1"} and probe.replicas.host("10.0.2.2") is None


async def test_regional_local_one_mode_reads_the_datacenter_as_a_whole() -> None:
    clock = FakeClock()
    ring = Ring({EU: ["10.0.2.1", "10.0.2.2"]})
    probe = build(
        parse_config(
            {
                "cluster": {"contact_points": ["127.0.0.1"]},
                "datacenters": {"write": WRITE, "read": [EU], "local": EU},
                "probes": {"replication": {"mode": "regional"}},
            }
        ),
        ring,
        clock,
    )
    await probe.run()
    assert set(probe._pollers) == {None} and ring.lookups == 0
    assert replicas(probe, EU) == (None, None)


# --- the token map lookup, on the driver's own metadata ----------------------------------


class Connected:
    """Stands in for the driver's Cluster: only its metadata is looked at."""

    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata


def connected(metadata: Metadata | None) -> CassandraConnection:
    connection = CassandraConnection(config())
    if metadata is not None:
        connection._cluster = Connected(metadata)  # type: ignore[assignment]
    return connection


def driver_metadata(nodes: dict[str, list[str]], rf: dict[str, int]) -> Metadata:
    """The driver's Metadata for a ring of one token per node, and the monitoring keyspace."""
    metadata = Metadata()
    tokens: dict[DriverHost, list[str]] = {}
    addresses = [(dc, a) for dc, group in nodes.items() for a in group]
    step = 2**64 // len(addresses)
    for index, (dc, address) in enumerate(addresses):
        host = DriverHost(DefaultEndPoint(address), SimpleConvictionPolicy, datacenter=dc, rack="r")
        metadata.add_or_return_host(host)
        tokens[host] = [str(-(2**63) + index * step)]
    options = {dc: str(n) for dc, n in rf.items()}
    metadata.keyspaces["cqrs_monitoring"] = KeyspaceMetadata(
        "cqrs_monitoring", True, "NetworkTopologyStrategy", options
    )
    metadata.rebuild_token_map("org.apache.cassandra.dht.Murmur3Partitioner", tokens)
    return metadata


def prepared_select() -> PreparedStatement:
    """The sentinel select as the driver prepares it: both key columns are the partition key."""
    columns = [
        ColumnMetadata("cqrs_monitoring", "replication_sentinels", name, UTF8Type)
        for name in ("writer_id", "source_datacenter")
    ]
    return PreparedStatement(columns, b"id", [0, 1], "SELECT", "cqrs_monitoring", 5, [], None)


def test_the_replicas_of_the_sentinel_row_come_from_the_token_map_by_datacenter() -> None:
    nodes = {WRITE: ["10.0.0.1", "10.0.0.2", "10.0.0.3"], EU: ["10.0.2.1", "10.0.2.2", "10.0.2.3"]}
    connection = connected(driver_metadata(nodes, {WRITE: 1, EU: 2}))
    statement = prepared_select()
    found = {dc: connection.replicas(statement, ("default", WRITE), dc) for dc in (WRITE, EU, CA)}
    assert len(found[WRITE]) == 1 and len(found[EU]) == 2 and found[CA] == []
    assert {h.datacenter for h in found[EU]} == {EU}
    assert [str(h.endpoint) for h in found[EU]] == sorted(str(h.endpoint) for h in found[EU])
    # Another partition may live elsewhere: the lookup follows the key.
    placements = {
        frozenset(h.address for h in connection.replicas(statement, (f"w{i}", WRITE), EU))
        for i in range(20)
    }
    assert len(placements) > 1


def test_no_replicas_before_connecting_or_for_a_keyspace_the_map_does_not_know() -> None:
    statement = prepared_select()
    assert connected(None).replicas(statement, ("default", WRITE), EU) == []
    metadata = driver_metadata({EU: ["10.0.2.1"]}, {EU: 1})
    del metadata.keyspaces["cqrs_monitoring"]
    assert connected(metadata).replicas(statement, ("default", WRITE), EU) == []
