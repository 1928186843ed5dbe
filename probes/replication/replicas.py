"""Who reads the sentinel row in a datacenter: the datacenter as a whole, or each replica.

In `local_one` mode a datacenter has one reader (`None`): a LOCAL_ONE read the driver sends
to whichever node it picks, answered by whichever replica that node asks. In `per_replica`
mode each of the datacenter's replicas of the sentinel row, from the driver's token map, is
a reader of its own, keyed by its address: reads are pinned to it as coordinator, and a
coordinator that holds the row reads its own copy first. The readers are looked up again
every round, so a node that left the cluster (or no longer holds the row) stops being read
and counted, and one that joined is read from its first round on.
"""

from __future__ import annotations

import logging

from cassandra.pool import Host
from prometheus_client.core import GaugeMetricFamily

from exporter.config.replication import ReadMode
from exporter.connection import CassandraConnection
from exporter.metric_catalogue import REPLICATION_REPLICAS, REPLICATION_REPLICAS_CAUGHT_UP
from probes.replication.tracker import ReaderKey

WHOLE: frozenset[ReaderKey] = frozenset({None})
"""The readers of a datacenter read as a whole."""


class Replicas:
    """The readers of each datacenter in the configured read mode, and the host behind each."""

    def __init__(
        self,
        connection: CassandraConnection,
        mode: ReadMode,
        select: str,
        key: tuple[str, str],
        log: logging.Logger,
    ) -> None:
        self._connection = connection
        self.mode = mode
        self._select = select
        self._key = key
        self._log = log
        self._hosts: dict[ReaderKey, Host] = {}
        self._unknown: set[str] = set()
        """Datacenters read as a whole for want of their replicas (warned about once)."""

    @property
    def per_replica(self) -> bool:
        return self.mode is ReadMode.PER_REPLICA

    async def readers(self, dc: str) -> frozenset[ReaderKey]:
        """The datacenter's readers now: `WHOLE`, or the address of each of its replicas.

        Per replica, a datacenter the token map names no replica in (before the driver has
        read the keyspace, say) is read as a whole meanwhile, and the log says so once.
        """
        if not self.per_replica:
            return WHOLE
        statement = await self._connection.prepare(self._select)
        hosts = self._connection.replicas(statement, self._key, dc)
        if not hosts:
            if dc not in self._unknown:
                self._unknown.add(dc)
                self._log.warning(
                    "the driver's token map names no replica of the sentinel row in %s: "
                    "reading it at LOCAL_ONE as a whole until it does",
                    dc,
                )
            return WHOLE
        if dc in self._unknown:
            self._unknown.discard(dc)
            self._log.info("reading the sentinel row through each replica in %s", dc)
        keys: list[ReaderKey] = []
        for host in hosts:
            key = str(host.endpoint)
            self._hosts[key] = host  # the driver may hand a returning node a new Host
            keys.append(key)
        return frozenset(keys)

    def host(self, key: ReaderKey) -> Host | None:
        """The node a reader's requests are pinned to (None: the driver picks)."""
        return self._hosts.get(key)

    def forget(self, keys: set[ReaderKey]) -> None:
        """Readers gone from every datacenter: their hosts are no longer held."""
        for key in keys:
            self._hosts.pop(key, None)


def replica_families(
    counts: dict[str, tuple[int, int | None]], source: str
) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    """The per-replica gauges: replicas read and replicas caught up, per target datacenter.

    `counts` maps a datacenter read per replica to (its replicas, how many have caught up,
    None while that is unknown); a datacenter read as a whole is not in it.
    """
    total = REPLICATION_REPLICAS.family(
        "Replicas of the sentinel row in the target datacenter that are read one by one "
        "(read_mode per_replica; from the driver's token map)."
    )
    caught_up = REPLICATION_REPLICAS_CAUGHT_UP.family(
        "Replicas of the sentinel row in the target datacenter that have returned the "
        "newest sentinel (or a later one) (read_mode per_replica)."
    )
    for dc, (replicas, caught) in sorted(counts.items()):
        total.add_metric([source, dc], replicas)
        if caught is not None:
            caught_up.add_metric([source, dc], caught)
    return total, caught_up
