"""Replication-only faults: replication into a datacenter delayed or cut through its
proxies, while its clients still reach it directly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import SimpleStatement

from testbed import TestbedCluster
from tests.testbed_support import connect, eventually, run_cli

pytestmark = [pytest.mark.cluster, pytest.mark.fault]

DELAY_MS = 400


@pytest.fixture
def events(healthy_testbed: TestbedCluster) -> Iterator[str]:
    """A table with a replica in every datacenter; its name as keyspace.table."""
    keyspace = f"faults_{uuid.uuid4().hex[:12]}"
    replication = ", ".join(f"'{dc}': 1" for dc in healthy_testbed.datacenters)
    writer = healthy_testbed.node(healthy_testbed.write_datacenter)
    with connect(writer.address) as session:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', {replication}}}"
        )
        session.execute(f"CREATE TABLE {keyspace}.events (id int PRIMARY KEY, body text)")
    try:
        yield f"{keyspace}.events"
    finally:
        healthy_testbed.heal()
        with connect(writer.address) as session:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def timed(session: Session, cql: str, level: int) -> float:
    began = time.perf_counter()
    session.execute(SimpleStatement(cql, consistency_level=level))
    return time.perf_counter() - began


def write_at_all(session: Session, table: str, key: int) -> float:
    cql = f"INSERT INTO {table} (id, body) VALUES ({key}, 'x')"
    return timed(session, cql, ConsistencyLevel.ALL)


def test_a_delay_slows_replication_into_one_datacenter_and_not_its_clients(
    healthy_testbed: TestbedCluster, events: str
) -> None:
    dc = healthy_testbed.read_datacenters[-1]
    writer = healthy_testbed.node(healthy_testbed.write_datacenter)
    regional = healthy_testbed.node(dc)
    with connect(writer.address) as writes, connect(regional.address) as reads:
        before = min(write_at_all(writes, events, key) for key in range(5))

        healthy_testbed.delay(dc, DELAY_MS)

        # A write at ALL waits for the delayed replica: the mutation reaches it a delay late.
        delayed = [write_at_all(writes, events, key) for key in range(10, 15)]
        local_reads = [
            timed(reads, f"SELECT * FROM {events} WHERE id = 1", ConsistencyLevel.LOCAL_ONE)
            for _ in range(5)
        ]
        faults = healthy_testbed.faults()

        healthy_testbed.heal(dc)

        after = min(write_at_all(writes, events, key) for key in range(20, 25))
    assert before < DELAY_MS / 1000 / 2, before
    assert min(delayed) >= DELAY_MS / 1000, delayed
    assert min(local_reads) < DELAY_MS / 1000 / 2, local_reads
    assert [(f.dc, f.kind, f.latency_ms) for f in faults] == [(dc, "delay", DELAY_MS)]
    assert after < DELAY_MS / 1000 / 2, after
    assert healthy_testbed.faults() == []


def test_a_partition_cuts_replication_while_the_datacenter_still_answers(
    healthy_testbed: TestbedCluster, events: str
) -> None:
    dc = healthy_testbed.read_datacenters[0]
    writer = healthy_testbed.node(healthy_testbed.write_datacenter)
    regional = healthy_testbed.node(dc)
    read = SimpleStatement(
        f"SELECT body FROM {events} WHERE id = 7", consistency_level=ConsistencyLevel.LOCAL_ONE
    )
    with connect(writer.address) as writes, connect(regional.address) as reads:
        healthy_testbed.partition(dc)
        writes.execute(
            SimpleStatement(
                f"INSERT INTO {events} (id, body) VALUES (7, 'during')",
                consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            )
        )
        # The datacenter keeps answering its clients, from data that lacks the write.
        stale_until = time.monotonic() + 5.0
        while time.monotonic() < stale_until:
            assert reads.execute(read).one() is None
            time.sleep(0.5)
        assert [(f.dc, f.kind) for f in healthy_testbed.faults()] == [(dc, "partition")]

        healthy_testbed.heal(dc)

        # Once the datacenter is seen again, the write arrives (a hint, replayed).
        row = eventually(lambda: reads.execute(read).one().body, 120, f"the write reaching {dc}")
    assert row == "during"


def test_the_cli_plays_and_lists_the_faults(
    healthy_testbed: TestbedCluster,
) -> None:
    base = ["--dir", str(healthy_testbed.base_dir)]
    dc = healthy_testbed.read_datacenters[0]
    try:
        delayed = run_cli("delay", dc, "250", "--jitter", "20", *base)
        status = run_cli("status", *base)
        bad = run_cli("delay", dc, "soon", *base)
        healed = run_cli("heal", *base)
    finally:
        healthy_testbed.heal()

    assert delayed.returncode == 0, delayed.stderr
    assert f"{dc}: replication delayed 250 ms ± 20 ms" in delayed.stdout
    assert f"replication fault: {dc}: replication delayed 250 ms ± 20 ms" in status.stdout
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "soon" in bad.stderr
    assert healed.returncode == 0 and "replication faults: none" in healed.stdout
