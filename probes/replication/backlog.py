"""Cassandra's own replication backlog, read over CQL from each node's virtual tables.

`system_views.pending_hints` (hint files a node holds for a peer) and
`system_views.internode_outbound` (messages queued toward a peer) are node-local, so each
known node is asked directly (the coordinator pinned to it). Values are summed per pair of
(the node's datacenter, the peer's datacenter); no node is ever a label. A table or column
the cluster's version lacks simply yields no series.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from cassandra import InvalidRequest
from cassandra.pool import Host
from prometheus_client.metrics_core import Metric

from exporter.config import Consistency
from exporter.config.replication import BacklogConfig, ReplicationMode
from exporter.connection import classify, describe
from exporter.metric_catalogue import (
    REPLICATION_BACKLOG_NODES,
    REPLICATION_HINTS_PENDING,
    REPLICATION_INTERNODE_PENDING_BYTES,
    REPLICATION_INTERNODE_PENDING_MESSAGES,
    GaugeSpec,
)
from exporter.results import ProbeOutcome
from probes.base import Probe, ProbeContext

COLUMNS_QUERY = (
    "SELECT table_name, column_name FROM system_virtual_schema.columns "
    "WHERE keyspace_name = 'system_views'"
)


@dataclass(frozen=True)
class BacklogSeries:
    """One exported gauge: a numeric column of a virtual table, summed per datacenter pair."""

    table: str
    column: str
    spec: GaugeSpec
    help: str

    @property
    def metric(self) -> str:
        return self.spec.name


SERIES: tuple[BacklogSeries, ...] = (
    BacklogSeries(
        "pending_hints",
        "files",
        REPLICATION_HINTS_PENDING,
        "Hint files the source datacenter's nodes hold for nodes of the target datacenter "
        "(writes that replica missed; summed over the nodes that answered).",
    ),
    BacklogSeries(
        "internode_outbound",
        "pending_count",
        REPLICATION_INTERNODE_PENDING_MESSAGES,
        "Messages queued on the source datacenter's nodes toward nodes of the target "
        "datacenter (summed over the nodes that answered).",
    ),
    BacklogSeries(
        "internode_outbound",
        "pending_bytes",
        REPLICATION_INTERNODE_PENDING_BYTES,
        "Bytes queued on the source datacenter's nodes toward nodes of the target datacenter "
        "(summed over the nodes that answered).",
    ),
)

Sums = dict[tuple[str, str], float]


def series_cql(table: str, columns: list[str]) -> str:
    """The read of a virtual table's columns, with each row's peer datacenter."""
    return f"SELECT dc, {', '.join(columns)} FROM system_views.{table}"


STATEMENTS: tuple[str, ...] = (
    COLUMNS_QUERY,
    *(
        series_cql(table, [s.column for s in SERIES if s.table == table])
        for table in dict.fromkeys(s.table for s in SERIES)
    ),
)
"""What the backlog probe reads, at most (a table or column the cluster lacks is not)."""


class ReplicationBacklogProbe(Probe):
    kind = "replication_backlog"

    def __init__(self, context: ProbeContext, schedule: BacklogConfig) -> None:
        super().__init__(context, schedule)
        datacenters = self.config.datacenters
        regional = self.config.probes.replication.mode is ReplicationMode.REGIONAL
        # A regional exporter may not reach the other datacenters: it asks its own only.
        self.sources = (datacenters.local_datacenter,) if regional else datacenters.all
        self.peers = datacenters.all
        self.available: dict[str, set[str]] | None = None
        """Columns of each system_views table, once asked; tables absent here are skipped."""
        self._values: dict[str, Sums] = {}
        self._nodes: dict[str, int] = {}

    async def _discover(self, timeout: float) -> dict[str, set[str]]:
        try:
            rows = await self.connection.execute(
                COLUMNS_QUERY,
                datacenter=self.sources[0],
                consistency=Consistency.LOCAL_ONE,
                timeout=timeout,
            )
        except InvalidRequest:  # a version before virtual tables: nothing to export
            return {}
        available: dict[str, set[str]] = {}
        for row in rows:
            available.setdefault(row.table_name, set()).add(row.column_name)
        return available

    def _queries(self, available: dict[str, set[str]]) -> dict[str, list[BacklogSeries]]:
        """The series each present table can give (it needs a `dc` column and the value)."""
        by_table: dict[str, list[BacklogSeries]] = {}
        for series in SERIES:
            columns = available.get(series.table, set())
            if "dc" in columns and series.column in columns:
                by_table.setdefault(series.table, []).append(series)
        return by_table

    async def _table(
        self, dc: str, host: Host, table: str, series: list[BacklogSeries], timeout: float
    ) -> dict[str, Sums]:
        rows = await self.connection.execute(
            series_cql(table, [s.column for s in series]),
            datacenter=dc,
            consistency=Consistency.LOCAL_ONE,
            timeout=timeout,
            host=host,
        )
        values: dict[str, Sums] = {}
        for s in series:
            sums = values.setdefault(s.metric, {})
            for row in rows:
                if row.dc is None:  # a peer whose datacenter is not known yet
                    continue
                key = (dc, str(row.dc))
                sums[key] = sums.get(key, 0.0) + float(getattr(row, s.column) or 0)
        return values

    async def _ask(
        self, dc: str, host: Host, queries: dict[str, list[BacklogSeries]], timeout: float
    ) -> tuple[str, dict[str, Sums] | BaseException]:
        """One node's backlog, its tables asked at once so the node takes one timeout at most."""
        try:
            parts = await asyncio.gather(
                *(self._table(dc, host, t, series, timeout) for t, series in queries.items())
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return dc, exc
        return dc, {metric: sums for part in parts for metric, sums in part.items()}

    async def run(self) -> ProbeOutcome:
        # Every request shares one budget inside the run's timeout, so a slow node costs
        # its own values, never the whole run's.
        deadline = self.clock.monotonic() + self.schedule.timeout * 0.8
        if self.available is None:
            self.available = await self._discover(self.schedule.timeout * 0.4)
        queries = self._queries(self.available)
        budget = max(0.05, deadline - self.clock.monotonic())
        if not queries:
            self._values, self._nodes = {}, {}
            return ProbeOutcome.ok("this Cassandra version has no backlog virtual tables")
        asks = [
            self._ask(dc, host, queries, budget)
            for dc in self.sources
            for host in self.connection.hosts(dc)
            if host.is_up is not False
        ]
        answers = await asyncio.gather(*asks)
        values: dict[str, Sums] = {s.metric: {} for series in queries.values() for s in series}
        nodes: dict[str, int] = {}
        failed: list[tuple[str, BaseException]] = []
        for dc, answer in answers:
            if isinstance(answer, BaseException):
                failed.append((dc, answer))
                continue
            nodes[dc] = nodes.get(dc, 0) + 1
            for metric, sums in values.items():
                # Every pair of an answering datacenter exists, at zero when nothing is queued.
                for peer in self.peers:
                    sums.setdefault((dc, peer), 0.0)
                for key, value in answer.get(metric, {}).items():
                    sums[key] = sums.get(key, 0.0) + value
        self._values, self._nodes = values, nodes
        if failed:
            detail = "; ".join(f"a node in {dc}: {describe(exc)}" for dc, exc in failed)
            return ProbeOutcome.failed(classify(failed[0][1]), detail)
        return ProbeOutcome.ok()

    def collect(self) -> Iterable[Metric]:
        for series in SERIES:
            sums = self._values.get(series.metric)
            if sums is None:
                continue
            family = series.spec.family(series.help)
            for (source, target), value in sorted(sums.items()):
                family.add_metric([source, target], value)
            yield family
        if self._values:
            nodes = REPLICATION_BACKLOG_NODES.family(
                "Nodes of the datacenter whose backlog the last run could read (the sums "
                "cover these)."
            )
            for dc in self.sources:
                nodes.add_metric([dc], self._nodes.get(dc, 0))
            yield nodes
