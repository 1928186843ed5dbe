"""The testbed: a real three-datacenter Cassandra cluster and its fault controls."""

from __future__ import annotations

import uuid

import pytest
from cassandra import ConsistencyLevel, OperationTimedOut
from cassandra.cluster import NoHostAvailable
from cassandra.query import SimpleStatement

from testbed import TestbedCluster
from tests.testbed_support import connect, eventually, run_cli

pytestmark = pytest.mark.cluster


def test_three_nodes_run_one_per_datacenter(testbed_cluster: TestbedCluster) -> None:
    statuses = testbed_cluster.status()

    assert [s.dc for s in statuses] == ["us-east", "ca-central", "eu-west"]
    assert all(s.state == "running" and s.cql for s in statuses), statuses
    assert len({s.address for s in statuses}) == 3
    assert testbed_cluster.contact_points == [s.address for s in statuses]
    assert testbed_cluster.write_datacenter == "us-east"
    assert testbed_cluster.read_datacenters == ("ca-central", "eu-west")


def test_each_node_reports_its_own_datacenter(testbed_cluster: TestbedCluster) -> None:
    for node in testbed_cluster.nodes:
        with connect(node.address) as session:
            row = session.execute(
                "SELECT data_center, rack, broadcast_address FROM system.local"
            ).one()

        assert (row.data_center, row.rack) == (node.dc, "rack1")
        assert str(row.broadcast_address) == node.broadcast_address


def test_every_node_sees_the_other_datacenters_as_peers(testbed_cluster: TestbedCluster) -> None:
    everyone = {node.broadcast_address: node.dc for node in testbed_cluster.nodes}
    for node in testbed_cluster.nodes:
        with connect(node.address) as session:
            peers = {
                str(r.peer): r.data_center
                for r in session.execute("SELECT peer, data_center FROM system.peers_v2")
            }

        assert peers == {a: dc for a, dc in everyone.items() if a != node.broadcast_address}


def test_nodetool_status_lists_the_three_datacenters_up(testbed_cluster: TestbedCluster) -> None:
    output = testbed_cluster.nodetool(testbed_cluster.write_datacenter, "status")

    for dc in testbed_cluster.datacenters:
        assert f"Datacenter: {dc}" in output
    up_normal = [line.split()[1] for line in output.splitlines() if line.startswith("UN ")]
    assert sorted(up_normal) == sorted(n.broadcast_address for n in testbed_cluster.nodes)


@pytest.mark.fault
def test_paused_node_stops_answering_and_resume_restores_it(
    healthy_testbed: TestbedCluster,
) -> None:
    dc = healthy_testbed.read_datacenters[-1]
    node = healthy_testbed.node(dc)
    query = "SELECT release_version FROM system.local"
    with connect(node.address) as session:
        session.execute(query)

        healthy_testbed.pause(dc)

        assert healthy_testbed.node(dc).state() == "paused"
        with pytest.raises((OperationTimedOut, NoHostAvailable)):
            session.execute(query, timeout=3)
        assert not node.cql_answers(timeout=1.0)

        healthy_testbed.resume(dc)

        assert eventually(
            lambda: session.execute(query, timeout=3).one(), 60, f"{dc} answering again"
        )
    assert [s.state for s in healthy_testbed.status()] == ["running"] * 3


@pytest.mark.fault
def test_killed_node_starts_again_with_its_data(healthy_testbed: TestbedCluster) -> None:
    keyspace = f"testbed_{uuid.uuid4().hex[:12]}"
    replication = ", ".join(f"'{dc}': 1" for dc in healthy_testbed.datacenters)
    dc = healthy_testbed.read_datacenters[0]
    node = healthy_testbed.node(dc)
    writer = healthy_testbed.node(healthy_testbed.write_datacenter)
    with connect(writer.address) as session:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', {replication}}}"
        )
        session.execute(f"CREATE TABLE {keyspace}.events (id int PRIMARY KEY, body text)")
        insert = SimpleStatement(
            f"INSERT INTO {keyspace}.events (id, body) VALUES (1, 'before the crash')",
            consistency_level=ConsistencyLevel.ALL,
        )
        session.execute(insert)

    try:
        healthy_testbed.kill(dc)

        assert healthy_testbed.node(dc).state() == "stopped"
        assert not node.cql_answers(timeout=1.0)

        healthy_testbed.start(dc)

        assert healthy_testbed.node(dc).state() == "running"
        with connect(node.address) as session:
            read = SimpleStatement(
                f"SELECT body FROM {keyspace}.events WHERE id = 1",
                consistency_level=ConsistencyLevel.LOCAL_ONE,
            )
            row = session.execute(read).one()
        assert row is not None and row.body == "before the crash"
    finally:
        with connect(writer.address) as session:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_cli_status_lists_every_node_running(testbed_cluster: TestbedCluster) -> None:
    result = run_cli("status", "--dir", str(testbed_cluster.base_dir))

    assert result.returncode == 0, result.stderr
    for node in testbed_cluster.nodes:
        line = next(line for line in result.stdout.splitlines() if line.startswith(node.dc))
        assert node.address in line and "running" in line


def test_cli_rejects_an_unknown_datacenter_in_one_line(testbed_cluster: TestbedCluster) -> None:
    result = run_cli("pause", "atlantis", "--dir", str(testbed_cluster.base_dir))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "unknown datacenter 'atlantis'" in result.stderr
    assert "Traceback" not in result.stderr
    assert [s.state for s in testbed_cluster.status()] == ["running"] * 3
