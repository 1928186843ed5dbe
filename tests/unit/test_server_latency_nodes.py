"""The server-side latency view with several nodes per datacenter: the worst node's p99 and
the number that answered, per datacenter; no host label; a node that left, or that the
driver knows is down, drops out.

Against a stand-in connection (pure aggregation logic); the real virtual tables are read in
tests/cluster/test_latency_probe.py.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from cassandra import OperationTimedOut

from exporter.config import parse_config
from exporter.results import FailureReason
from probes.base import ProbeContext
from probes.latency.server import ServerLatencyProbe
from probes.registry import KINDS

Host = namedtuple("Host", "address datacenter is_up")
Latency = namedtuple("Latency", "count p99th_ms")

CONFIG = parse_config(
    {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["eu-west"]},
    }
)


class Nodes:
    """A stand-in connection: each node answers every table with its own p99 (seconds)."""

    def __init__(self, p99s: dict[Host, float]) -> None:
        self.p99s = dict(p99s)
        self.failing: set[str] = set()
        self.asked: set[str] = set()

    connected = True

    def hosts(self, dc: str) -> list[Host]:
        return [h for h in self.p99s if h.datacenter == dc]

    async def execute(self, query: str, params: Any = None, **kw: Any) -> list[Latency]:
        host = kw["host"]
        assert host is not None, "virtual tables must be read from a pinned node"
        self.asked.add(host.address)
        if host.address in self.failing:
            raise OperationTimedOut("stalled")
        return [Latency(10, self.p99s[host])]


def server(connection: Nodes) -> ServerLatencyProbe:
    (built,) = KINDS["server_latency"].build(ProbeContext(CONFIG, connection))  # type: ignore[arg-type]
    assert isinstance(built, ServerLatencyProbe)
    return built


def exported(p: ServerLatencyProbe) -> tuple[dict[tuple[str, str, str], float], dict[str, float]]:
    """((operation, datacenter, table) -> p99, datacenter -> nodes that answered)."""
    p99: dict[tuple[str, str, str], float] = {}
    answered: dict[str, float] = {}
    for family in p.collect():
        for s in family.samples:
            assert set(s.labels) <= {"operation", "cassandra_datacenter", "keyspace", "table"}
            dc = s.labels["cassandra_datacenter"]
            if s.name == "cqrs_server_latency_nodes_answered":
                answered[dc] = s.value
            else:
                p99[(s.labels["operation"], dc, s.labels["table"])] = s.value
    return p99, answered


US1, US2 = Host("10.0.0.1", "us-east", True), Host("10.0.0.2", "us-east", True)
EU1, EU2 = Host("10.0.2.1", "eu-west", True), Host("10.0.2.2", "eu-west", True)


async def test_a_datacenter_reports_its_worst_nodes_p99_and_how_many_answered() -> None:
    p = server(Nodes({US1: 0.004, US2: 0.009, EU1: 0.002, EU2: 0.003}))
    assert (await p.run()).success
    p99, answered = exported(p)
    assert p99[("read", "us-east", "command_probe")] == 0.009
    assert p99[("write", "eu-west", "command_probe")] == 0.003
    assert answered == {"us-east": 2, "eu-west": 2}


async def test_a_node_that_does_not_answer_drops_out_of_its_datacenter_only() -> None:
    connection = Nodes({US1: 0.004, US2: 0.009, EU1: 0.002, EU2: 0.003})
    connection.failing.add(US2.address)
    p = server(connection)
    outcome = await p.run()
    assert not outcome.success and outcome.reason is FailureReason.TIMEOUT
    p99, answered = exported(p)
    assert p99[("read", "us-east", "command_probe")] == 0.004
    assert answered == {"us-east": 1, "eu-west": 2}


async def test_a_node_that_left_the_cluster_leaves_every_figure_next_run() -> None:
    connection = Nodes({US1: 0.004, US2: 0.009, EU1: 0.002, EU2: 0.003})
    p = server(connection)
    await p.run()
    del connection.p99s[US2]  # gone from the driver's metadata
    assert (await p.run()).success
    p99, answered = exported(p)
    assert p99[("read", "us-east", "command_probe")] == 0.004
    assert answered == {"us-east": 1, "eu-west": 2}


async def test_a_node_known_down_is_not_asked_and_does_not_fail_the_run() -> None:
    down = EU2._replace(is_up=False)
    connection = Nodes({US1: 0.004, EU1: 0.002, down: 0.5})
    p = server(connection)
    assert (await p.run()).success
    assert down.address not in connection.asked
    p99, answered = exported(p)
    assert p99[("read", "eu-west", "command_probe")] == 0.002
    assert answered == {"us-east": 1, "eu-west": 1}
