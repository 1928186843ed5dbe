"""Backlog from virtual tables: sums per datacenter pair, absent tables give absent series.

Against a stand-in connection (pure aggregation logic); the real tables are exercised in
test_replication_cluster.py.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from cassandra import InvalidRequest, OperationTimedOut

from exporter.config import parse_config
from exporter.results import FailureReason
from probes.base import ProbeContext
from probes.registry import KINDS
from probes.replication.backlog import COLUMNS_QUERY, ReplicationBacklogProbe

Host = namedtuple("Host", "address datacenter is_up")
Column = namedtuple("Column", "table_name column_name")
Hints = namedtuple("Hints", "dc files")
Outbound = namedtuple("Outbound", "dc pending_count pending_bytes")

CONFIG = parse_config(
    {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["eu-west"]},
    }
)
HOSTS = {
    "us-east": [Host("10.0.0.1", "us-east", True), Host("10.0.0.2", "us-east", True)],
    "eu-west": [Host("10.0.1.1", "eu-west", True), Host("10.0.1.2", "eu-west", False)],
}
ALL_COLUMNS = [
    Column("pending_hints", c) for c in ("dc", "files", "host_id", "address")
] + [Column("internode_outbound", c) for c in ("dc", "pending_count", "pending_bytes")]


class StandIn:
    """Answers like a cluster whose nodes hold the given rows; records who was asked."""

    def __init__(self, columns: list[Column], rows: dict[str, dict[str, list[Any]]]) -> None:
        self.columns = columns
        self.rows = rows
        self.asked: list[tuple[str, str]] = []
        self.failing: set[str] = set()

    def hosts(self, dc: str) -> list[Host]:
        return HOSTS[dc]

    async def execute(self, query: str, *args: Any, host: Host | None = None, **kw: Any) -> Any:
        if query == COLUMNS_QUERY:
            return self.columns
        assert host is not None, "virtual tables must be read from a pinned node"
        table = query.rsplit(".", 1)[1]
        self.asked.append((host.address, table))
        if host.address in self.failing:
            raise OperationTimedOut("stalled")
        return self.rows.get(host.address, {}).get(table, [])


def probe(connection: StandIn) -> ReplicationBacklogProbe:
    context = ProbeContext(CONFIG, connection)  # type: ignore[arg-type]
    (built,) = KINDS["replication_backlog"].build(context)
    assert isinstance(built, ReplicationBacklogProbe)
    return built


def samples(p: ReplicationBacklogProbe) -> dict[tuple[str, str, str], float]:
    return {
        (s.name, s.labels.get("source_datacenter", ""), s.labels.get("target_datacenter", "")):
        s.value
        for family in p.collect()
        for s in family.samples
        if s.name != "cqrs_replication_backlog_nodes"
    }


async def test_values_are_summed_per_pair_of_datacenters_over_the_nodes() -> None:
    rows = {
        "10.0.0.1": {
            "pending_hints": [Hints("eu-west", 2)],
            "internode_outbound": [Outbound("eu-west", 5, 500), Outbound("us-east", 0, 0)],
        },
        "10.0.0.2": {
            "pending_hints": [Hints("eu-west", 1)],
            "internode_outbound": [Outbound("eu-west", 7, 700), Outbound(None, 9, 9)],
        },
        "10.0.1.1": {"internode_outbound": [Outbound("us-east", 1, 100)]},
    }
    p = probe(StandIn(ALL_COLUMNS, rows))
    outcome = await p.run()
    assert outcome.success
    values = samples(p)
    assert values[("cqrs_replication_hints_pending_files", "us-east", "eu-west")] == 3
    assert values[("cqrs_replication_internode_pending_messages", "us-east", "eu-west")] == 12
    assert values[("cqrs_replication_internode_pending_bytes", "us-east", "eu-west")] == 1200
    assert values[("cqrs_replication_internode_pending_messages", "eu-west", "us-east")] == 1
    # Pairs with nothing queued exist at zero; a peer of unknown datacenter is left out.
    assert values[("cqrs_replication_hints_pending_files", "eu-west", "us-east")] == 0
    assert values[("cqrs_replication_hints_pending_files", "us-east", "us-east")] == 0
    assert not [k for k in values if "None" in k]


async def test_each_node_is_asked_directly_and_a_node_known_down_is_not() -> None:
    connection = StandIn(ALL_COLUMNS, {})
    p = probe(connection)
    await p.run()
    asked_hosts = {address for address, _ in connection.asked}
    assert asked_hosts == {"10.0.0.1", "10.0.0.2", "10.0.1.1"}
    nodes = {
        s.labels["cassandra_datacenter"]: s.value
        for family in p.collect()
        for s in family.samples
        if s.name == "cqrs_replication_backlog_nodes"
    }
    assert nodes == {"us-east": 2, "eu-west": 1}


async def test_a_node_that_does_not_answer_fails_the_run_but_not_the_others_values() -> None:
    connection = StandIn(ALL_COLUMNS, {"10.0.0.1": {"pending_hints": [Hints("eu-west", 4)]}})
    connection.failing.add("10.0.1.1")
    p = probe(connection)
    outcome = await p.run()
    assert not outcome.success and outcome.reason is FailureReason.TIMEOUT
    assert "eu-west" in outcome.detail
    values = samples(p)
    assert values[("cqrs_replication_hints_pending_files", "us-east", "eu-west")] == 4
    assert not [k for k in values if k[1] == "eu-west"]  # no node of eu-west answered


async def test_a_version_without_the_tables_exports_nothing_and_does_not_fail() -> None:
    connection = StandIn([Column("settings", "name")], {})
    p = probe(connection)
    outcome = await p.run()
    assert outcome.success
    assert list(p.collect()) == []
    assert connection.asked == []


async def test_a_table_without_a_column_drops_only_that_series() -> None:
    columns = [c for c in ALL_COLUMNS if c.column_name != "pending_bytes"]
    p = probe(StandIn(columns, {}))
    await p.run()
    names = {family.name for family in p.collect()}
    assert names == {
        "cqrs_replication_hints_pending_files",
        "cqrs_replication_internode_pending_messages",
        "cqrs_replication_backlog_nodes",
    }


async def test_a_version_without_virtual_tables_at_all_is_not_an_error() -> None:
    class Old(StandIn):
        async def execute(self, query: str, *args: Any, **kw: Any) -> Any:
            if query == COLUMNS_QUERY:
                raise InvalidRequest("Keyspace system_virtual_schema does not exist")
            return await super().execute(query, *args, **kw)

    connection = Old([], {})
    p = probe(connection)
    assert (await p.run()).success
    assert (await p.run()).success  # asked once, remembered
    assert list(p.collect()) == [] and connection.asked == []


async def test_a_node_that_left_the_cluster_leaves_the_sums_and_the_count_next_run() -> None:
    class Shrinking(StandIn):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.known = {dc: list(hosts) for dc, hosts in HOSTS.items()}

        def hosts(self, dc: str) -> list[Host]:
            return self.known[dc]

    rows = {
        "10.0.0.1": {"internode_outbound": [Outbound("eu-west", 5, 500)]},
        "10.0.0.2": {"internode_outbound": [Outbound("eu-west", 7, 700)]},
    }
    connection = Shrinking(ALL_COLUMNS, rows)
    p = probe(connection)
    await p.run()
    assert samples(p)[("cqrs_replication_internode_pending_messages", "us-east", "eu-west")] == 12
    connection.known["us-east"] = [h for h in HOSTS["us-east"] if h.address != "10.0.0.2"]
    await p.run()
    assert samples(p)[("cqrs_replication_internode_pending_messages", "us-east", "eu-west")] == 5
    families = list(p.collect())
    nodes = {
        s.labels["cassandra_datacenter"]: s.value
        for family in families
        for s in family.samples
        if s.name == "cqrs_replication_backlog_nodes"
    }
    assert nodes == {"us-east": 1, "eu-west": 1}
    labels = {name for family in families for s in family.samples for name in s.labels}
    assert labels <= {"source_datacenter", "target_datacenter", "cassandra_datacenter"}
