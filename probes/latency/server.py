"""Cassandra's own view of latency: coordinator read/write p99 per table, per datacenter.

Cassandra 5.0 exposes each node's coordinator latency per table in the node-local virtual
tables `system_views.coordinator_read_latency` and `coordinator_write_latency`. Each node
the driver knows and does not hold for down is asked directly (the request is pinned to
it); a datacenter's figure is the highest p99 among its nodes that answered, since
percentiles of different nodes cannot be averaged, and the number that answered is
exported beside it. Nothing is kept per node between runs: a node that left the cluster
leaves the driver's metadata and, from the next run on, every figure.
Only the tables the latency probe times are exported: the monitoring keyspace's
`command_probe` and the tables of the declared queries, so the series stay few.

Despite their `_ms` names, Cassandra 5.0 fills these columns with seconds (its timers keep
microseconds, converted as if they were nanoseconds), rounded to three decimals;
`column_unit` says how to read them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from cassandra import InvalidRequest
from cassandra.pool import Host
from prometheus_client.metrics_core import Metric

from exporter.config.latency import ServerLatencyConfig, queried_table
from exporter.connection import classify, describe
from exporter.metric_catalogue import SERVER_COORDINATOR_LATENCY_P99, SERVER_LATENCY_NODES_ANSWERED
from exporter.results import ProbeOutcome
from probes.base import Probe, ProbeContext
from probes.latency.requests import COMMANDS

VIEWS = {
    "read": "coordinator_read_latency",
    "write": "coordinator_write_latency",
}
"""Operation label → virtual table."""


def view_cql(view: str) -> str:
    # keyspace_name and table_name together are the partition key of these views.
    return (
        f"SELECT count, p99th_ms FROM system_views.{view} "
        "WHERE keyspace_name = %s AND table_name = %s"
    )


STATEMENTS: tuple[str, ...] = tuple(view_cql(view) for view in VIEWS.values())
"""What the server-latency probe reads."""


@dataclass(frozen=True, slots=True)
class TableLatency:
    operation: str
    datacenter: str
    keyspace: str
    table: str
    p99_seconds: float
    count: int
    """Requests the node(s) coordinated for this table since they started."""


class ServerLatencyProbe(Probe):
    kind = "server_latency"
    schedule: ServerLatencyConfig

    def __init__(
        self, context: ProbeContext, schedule: ServerLatencyConfig, name: str = ""
    ) -> None:
        super().__init__(context, schedule, name)
        # Unquoted names are stored lower-case, and the keyspace is never quoted.
        tables = {(self.config.monitoring.keyspace.lower(), COMMANDS.name)}
        for query in self.config.probes.latency.queries:
            table = queried_table(query.cql)
            if table is not None:
                tables.add(table)
        self.tables = frozenset(tables)
        self.latencies: list[TableLatency] = []
        self.answered: dict[str, int] = {}
        """Nodes per datacenter that answered the last run."""
        self._to_seconds = 1.0 if schedule.column_unit == "seconds" else 0.001
        self.missing_views: set[str] = set()
        """Virtual tables this Cassandra does not have (before 5.0): their series are absent."""

    async def _ask(
        self, host: Host, view: str, keyspace: str, table: str
    ) -> tuple[float, int] | None:
        """(p99 seconds, count) of one table on one node; None before its first request."""
        rows = await self.connection.execute(
            view_cql(view),
            (keyspace, table),
            datacenter=host.datacenter,
            host=host,
            timeout=max(self.schedule.timeout * 0.8, 0.1),
        )
        if not rows or not rows[0].count or rows[0].p99th_ms is None:
            return None
        return float(rows[0].p99th_ms) * self._to_seconds, int(rows[0].count)

    async def _node(self, host: Host) -> list[tuple[str, str, str, float, int]]:
        """(operation, keyspace, table, p99 seconds, count) from one node; raises on failure."""
        found: list[tuple[str, str, str, float, int]] = []
        for operation, view in VIEWS.items():
            if view in self.missing_views:
                continue
            for keyspace, table in sorted(self.tables):
                try:
                    answer = await self._ask(host, view, keyspace, table)
                except InvalidRequest as exc:
                    text = str(exc)
                    if "does not exist" in text or "unconfigured table" in text:
                        self.missing_views.add(view)
                        self.log.info("this Cassandra has no system_views.%s", view)
                        break
                    raise
                if answer is not None:
                    found.append((operation, keyspace, table, *answer))
        return found

    async def run(self) -> ProbeOutcome:
        # A node known down would only fail the run at once, however many others answer.
        hosts = [
            h
            for dc in self.config.datacenters.all
            for h in self.connection.hosts(dc)
            if h.is_up is not False
        ]
        if not self.connection.connected:
            self.latencies, self.answered = [], {}
            return ProbeOutcome.failed(*self.connection.why_not_connected())
        answers = await asyncio.gather(*(self._node(h) for h in hosts), return_exceptions=True)
        worst: dict[tuple[str, str, str, str], tuple[float, int]] = {}
        answered: dict[str, int] = dict.fromkeys(self.config.datacenters.all, 0)
        failures: list[tuple[Host, BaseException]] = []
        for host, answer in zip(hosts, answers, strict=True):
            if isinstance(answer, asyncio.CancelledError):
                raise answer
            if isinstance(answer, BaseException):
                failures.append((host, answer))
                continue
            answered[host.datacenter] = answered.get(host.datacenter, 0) + 1
            for operation, keyspace, table, p99, count in answer:
                key = (operation, host.datacenter, keyspace, table)
                previous_p99, previous_count = worst.get(key, (0.0, 0))
                worst[key] = (max(previous_p99, p99), previous_count + count)
        # Replaced whole each run: a node or table that stopped answering loses its series.
        self.latencies = [
            TableLatency(op, dc, keyspace, table, p99, count)
            for (op, dc, keyspace, table), (p99, count) in sorted(worst.items())
        ]
        self.answered = answered
        if failures:
            detail = "; ".join(f"{h.datacenter}: {describe(exc)}" for h, exc in failures)
            return ProbeOutcome.failed(classify(failures[0][1]), detail)
        return ProbeOutcome.ok()

    def collect(self) -> Iterable[Metric]:
        p99 = SERVER_COORDINATOR_LATENCY_P99.family(
            "Cassandra's own coordinator p99 latency per table (system_views.coordinator_"
            "read_latency / coordinator_write_latency, a recent-biased decaying histogram), "
            "the highest among the datacenter's nodes; only the tables the latency probe times."
        )
        for entry in self.latencies:
            p99.add_metric(
                [entry.operation, entry.datacenter, entry.keyspace, entry.table],
                entry.p99_seconds,
            )
        answered = SERVER_LATENCY_NODES_ANSWERED.family(
            "Nodes of the datacenter whose latency virtual tables answered the last run."
        )
        for dc, count in self.answered.items():
            answered.add_metric([dc], count)
        yield from (p99, answered)

