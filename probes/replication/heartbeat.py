"""Regional mode: the age of the writer's heartbeat, read in this exporter's own datacenter.

An exporter beside a read datacenter that cannot reach the write one cannot time a sentinel
on its own clock. It reads the row the writer exporter overwrites every round and compares
the row's `written_at` (the writer's wall clock) with its own wall clock. That comparison
depends on synchronized clocks, so it is its own metric, never `cqrs_replication_lag_seconds`.

Reads are cheap when all is well: one when the next heartbeat is due (`written_at` +
`interval`), then one every `poll_interval` until it shows. In `per_replica` read mode each
replica of the row in this datacenter is read on its own, and the age is the stalest one's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric

from exporter.config import Consistency
from exporter.config.replication import ReplicationConfig
from exporter.connection import classify, describe
from exporter.metric_catalogue import REPLICATION_HEARTBEAT_AGE
from exporter.results import Check, Observation, ProbeOutcome
from probes.base import Probe, ProbeContext
from probes.replication.failures import ReadFailures
from probes.replication.poller import CadencedPoller, stop_others
from probes.replication.replicas import Replicas, replica_families
from probes.replication.rows import select_cql, written_at_seconds
from probes.replication.tracker import ReaderKey


class HeartbeatProbe(Probe):
    """Regional mode: the writer's heartbeat, read in this exporter's own datacenter."""

    kind = "replication"
    settings: ReplicationConfig

    def __init__(self, context: ProbeContext, settings: ReplicationConfig) -> None:
        super().__init__(context, settings)
        self.settings = settings
        self.source = self.config.datacenters.write
        self.local = self.config.datacenters.local_datacenter
        self.writer_id = self.config.monitoring.writer_id
        self._select = select_cql(self.config.monitoring.keyspace)
        self.failures = ReadFailures([self.local])
        self._latest: dict[ReaderKey, float] = {}
        """Newest `written_at` each reader has returned (writer's clock, Unix seconds)."""
        self._last_read: dict[ReaderKey, float] = {}
        self._pollers: dict[ReaderKey, CadencedPoller] = {}
        self.replicas = Replicas(
            self.connection,
            settings.read_mode,
            self._select,
            (self.writer_id, self.source),
            self.log,
        )
        self._readers: frozenset[ReaderKey] = frozenset()

    async def run(self) -> ProbeOutcome:
        await self._refresh_readers()
        for key in self._readers:
            self._poller(key).wake()
        if self.local in self.failures.last_error:
            reason, detail = self.failures.last_error[self.local]
            return ProbeOutcome.failed(reason, f"heartbeat reads in {self.local} fail: {detail}")
        if self.newest() is None:
            return ProbeOutcome.ok(f"no heartbeat from writer {self.writer_id!r} yet")
        return ProbeOutcome.ok()

    async def _refresh_readers(self) -> None:
        """The local datacenter's readers now; what was kept for one that is gone goes."""
        readers = await self.replicas.readers(self.local)
        gone = await stop_others(self._pollers, readers)
        for key in [k for k in self._latest if k not in readers]:
            del self._latest[key]
        for key in [k for k in self._last_read if k not in readers]:
            del self._last_read[key]
        self.failures.retain(self.local, readers)
        self.replicas.forget(gone - readers)
        self._readers = readers

    def _poller(self, key: ReaderKey) -> CadencedPoller:
        poller = self._pollers.get(key)
        if poller is None:

            async def read() -> None:
                await self._read(key)

            poller = CadencedPoller(
                f"{self.name}:{self.local}" + (f":{key}" if key is not None else ""),
                read,
                lambda: self._due(key),
                period=self.settings.poll_interval,
                limit=1,  # see poller: never queue reads on a stalled node
                clock=self.clock,
            )
            self._pollers[key] = poller
        poller.start()
        return poller

    def _due(self, key: ReaderKey) -> float | None:
        """Poll when the next heartbeat is due, then every poll_interval until it shows."""
        interval = self.settings.interval
        since_read = self.clock.monotonic() - self._last_read.get(key, -math.inf)
        latest = self._latest.get(key)
        if latest is None:
            return interval - since_read  # no heartbeat yet: look once per interval
        overdue = self.clock.time() - (latest + interval)
        if overdue < 0:
            return -overdue
        if overdue > self.settings.sentinel_timeout:
            return interval - since_read  # the writer is long gone: back off to once per interval
        return 0.0

    async def _read(self, key: ReaderKey) -> None:
        self._last_read[key] = self.clock.monotonic()
        try:
            statement = await self.connection.prepare(self._select)
            rows = await self.connection.execute(
                statement,
                (self.writer_id, self.source),
                datacenter=self.local,
                consistency=Consistency.LOCAL_ONE,
                timeout=self.settings.read_timeout,
                host=self.replicas.host(key),
            )
        except Exception as exc:
            self.failures.record(self.local, classify(exc), describe(exc), key)
            return
        self.failures.succeeded(self.local, key)
        written = written_at_seconds(rows[0]) if rows else None
        if written is not None and written > self._latest.get(key, -math.inf):
            self._latest[key] = written

    async def stop(self) -> None:
        for poller in self._pollers.values():
            await poller.stop()

    def newest(self) -> float | None:
        """The newest heartbeat every reader has seen (writer's clock), None before the first.

        Per replica, the stalest replica's (among those that have returned one).
        """
        return min(self._latest.values()) if self._latest else None

    def caught_up(self) -> int | None:
        """Readers that have returned the newest heartbeat any of them has (None: none has)."""
        seen = [self._latest[r] for r in self._readers if r in self._latest]
        if not seen:
            return None
        return seen.count(max(seen))

    def age(self) -> float | None:
        """Reader's wall clock minus the heartbeat's `written_at`; never negative."""
        newest = self.newest()
        return None if newest is None else max(0.0, self.clock.time() - newest)

    def overdue(self) -> float | None:
        """How late the next heartbeat is: the regional counterpart of the sentinel lag."""
        age = self.age()
        return None if age is None else max(0.0, age - self.settings.interval)

    def collect(self) -> Iterable[Metric]:
        age = REPLICATION_HEARTBEAT_AGE.family(
            "Age of the newest writer heartbeat readable in the target datacenter: this "
            "exporter's wall clock minus the writer's (depends on synchronized clocks; "
            "includes up to one writer interval)."
        )
        value = self.age()
        if value is not None:
            age.add_metric([self.source, self.local], value)
        yield from (age, self.failures.family(self.source))
        if self.replicas.per_replica and None not in self._readers:
            counts = {self.local: (len(self._readers), self.caught_up())}
            yield from replica_families(counts, self.source)

    def observations(self) -> Iterable[Observation]:
        yield Observation(Check.REPLICATION_LAG, self.local, self.overdue())
