"""The testbed's shape without starting it: nodes, addresses, proxies, and the chaos story's
reading of alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed import TestbedCluster
from testbed.chaos import Target, state_of
from testbed.config_files import rackdc_properties
from testbed.errors import TestbedError


def test_one_node_per_datacenter_keeps_the_datacenter_names(tmp_path: Path) -> None:
    cluster = TestbedCluster(net="127.0.9", base_dir=tmp_path)

    assert [n.name for n in cluster.nodes] == ["us-east", "ca-central", "eu-west"]
    assert cluster.contact_points == ["127.0.9.1", "127.0.9.2", "127.0.9.3"]
    assert [n.broadcast_address for n in cluster.nodes] == [
        "127.0.9.101", "127.0.9.102", "127.0.9.103"
    ]
    assert cluster.replication_factor == {"us-east": 1, "ca-central": 1, "eu-west": 1}


def test_several_nodes_per_datacenter_alternate_around_the_ring(tmp_path: Path) -> None:
    cluster = TestbedCluster(nodes_per_dc=2, net="127.0.9", base_dir=tmp_path)

    assert [(n.name, n.address) for n in cluster.nodes_in("eu-west")] == [
        ("eu-west-1", "127.0.9.3"), ("eu-west-2", "127.0.9.6")
    ]
    assert [n.dc for n in cluster.nodes] == ["us-east", "ca-central", "eu-west"] * 2
    assert cluster.node("ca-central", 2).address == "127.0.9.5"
    assert len({n.jmx_port for n in cluster.nodes}) == 6
    assert len({n.home for n in cluster.nodes}) == 6
    assert cluster.replication_factor["eu-west"] == 2
    assert [n.name for n in cluster.select("us-east")] == ["us-east-1", "us-east-2"]


def test_without_proxies_nodes_broadcast_their_own_address(tmp_path: Path) -> None:
    cluster = TestbedCluster(replication_proxy=False, net="127.0.9", base_dir=tmp_path)

    assert all(n.broadcast_address == n.address for n in cluster.nodes)
    with pytest.raises(TestbedError, match="without replication proxies"):
        cluster.delay("eu-west", 100)
    assert cluster.faults() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.node("atlantis"), "unknown datacenter 'atlantis'"),
        (lambda c: c.node("eu-west", 3), "eu-west has nodes 1 to 2, not 3"),
        (lambda c: c.select("eu-west", 0), "eu-west has nodes 1 to 2, not 0"),
    ],
)
def test_an_unknown_node_is_named(tmp_path: Path, call: object, message: str) -> None:
    cluster = TestbedCluster(nodes_per_dc=2, net="127.0.9", base_dir=tmp_path)

    with pytest.raises(TestbedError, match=message):
        call(cluster)  # type: ignore[operator]


@pytest.mark.parametrize("count", [0, 6])
def test_nodes_per_datacenter_are_bounded(tmp_path: Path, count: int) -> None:
    with pytest.raises(TestbedError, match="nodes per datacenter must be 1 to 5"):
        TestbedCluster(nodes_per_dc=count, base_dir=tmp_path)


def test_nodes_of_one_datacenter_prefer_their_local_addresses() -> None:
    assert "prefer_local=true" in rackdc_properties("eu-west").splitlines()


def test_a_saved_testbed_loads_with_its_shape(tmp_path: Path) -> None:
    cluster = TestbedCluster(nodes_per_dc=2, net="127.0.9", base_dir=tmp_path)
    cluster.save_state()

    loaded = TestbedCluster.load(tmp_path)

    assert loaded.nodes_per_dc == 2 and loaded.replication_proxy
    assert [n.name for n in loaded.nodes] == [n.name for n in cluster.nodes]


def _alert(name: str, state: str, **labels: str) -> dict[str, object]:
    return {"labels": {"alertname": name, **labels}, "state": state}


def test_the_chaos_story_reads_an_alert_by_its_name_and_labels() -> None:
    target = Target("CqrsReplicationLagHigh", (("target_datacenter", "eu-west"),))
    other_dc = _alert("CqrsReplicationLagHigh", "firing", target_datacenter="ca-central")
    pending = _alert("CqrsReplicationLagHigh", "pending", target_datacenter="eu-west")
    firing = _alert("CqrsReplicationLagHigh", "firing", target_datacenter="eu-west")

    assert state_of(target, []) == "resolved"
    assert state_of(target, [other_dc]) == "resolved"
    assert state_of(target, [other_dc, pending]) == "pending"
    assert state_of(target, [pending, firing]) == "firing"
    assert str(target) == 'CqrsReplicationLagHigh{target_datacenter="eu-west"}'
