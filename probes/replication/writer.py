"""Cross-datacenter replication lag, measured with sentinels on the exporter's own clock.

Each round writes a sentinel (a new sequence number into one fixed row per writer and source
datacenter) at the command consistency in the write datacenter. Background pollers then read
that row at LOCAL_ONE in each read datacenter every `poll_interval` until the sentinel, or a
later one, shows: one reader per datacenter, or in `per_replica` read mode one per replica
of the row (`replicas`), the datacenter's lag then being the worst replica's. Both the
acknowledgement and the reads are timed on the monotonic clock, so clock skew between hosts
does not enter. The row doubles as the heartbeat that regional exporters read (see
`heartbeat`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from exporter.config import Consistency
from exporter.config.replication import ReplicationConfig
from exporter.connection import classify, describe
from exporter.metric_catalogue import (
    REPLICATION_LAG,
    REPLICATION_LAG_LOWER_BOUND,
    REPLICATION_LAG_RESOLUTION,
    REPLICATION_LAG_UPPER_BOUND,
    REPLICATION_SENTINELS_LOST,
    REPLICATION_SENTINELS_WRITTEN,
    REPLICATION_VISIBILITY,
)
from exporter.results import Check, Observation, ProbeOutcome
from probes.base import Probe, ProbeContext
from probes.replication.failures import ReadFailures
from probes.replication.poller import CadencedPoller, stop_others
from probes.replication.replicas import Replicas, replica_families
from probes.replication.rows import insert_cql, select_cql, written_at_seconds
from probes.replication.tracker import ReaderKey, SentinelTracker


class WriterProbe(Probe):
    """Writer mode: sentinels written in the write datacenter, looked for in every read one."""

    kind = "replication"
    settings: ReplicationConfig

    def __init__(self, context: ProbeContext, settings: ReplicationConfig) -> None:
        super().__init__(context, settings)
        self.settings = settings
        self.source = self.config.datacenters.write
        self.targets = tuple(self.config.datacenters.read)
        keyspace = self.config.monitoring.keyspace
        self._insert = insert_cql(keyspace)
        self._select = select_cql(keyspace)
        self.writer_id = self.config.monitoring.writer_id
        # A fresh incarnation per process, so a restarted exporter never mistakes the row its
        # previous life left behind (with a higher sequence) for its own new sentinel.
        self.incarnation = uuid.uuid4()
        self.sequence = 0
        self.written = 0
        self.tracker = SentinelTracker(self.targets, settings.sentinel_timeout)
        self.failures = ReadFailures(self.targets)
        self.replicas = Replicas(
            self.connection,
            settings.read_mode,
            self._select,
            (self.writer_id, self.source),
            self.log,
        )
        self._pollers: dict[tuple[str, ReaderKey], CadencedPoller] = {}
        self._losing: set[str] = set()
        self._started_wall = self.clock.time()
        self._warned_foreign = False

    # --- one round ------------------------------------------------------------------

    async def run(self) -> ProbeOutcome:
        self._count_losses()
        readers = await self._refresh_readers()
        insert = await self.connection.prepare(self._insert)
        self.sequence += 1
        written_at_ms = int(self.clock.time() * 1000)
        await self.connection.execute(
            insert,
            (self.writer_id, self.source, self.incarnation, self.sequence, written_at_ms),
            datacenter=self.source,
            write=True,
            timeout=self.settings.timeout * 0.8,
        )
        acked = self.clock.monotonic()
        self.written += 1
        if not self.targets:
            return ProbeOutcome.ok()
        self.tracker.add(self.sequence, acked, readers)
        for dc, keys in readers.items():
            for key in keys:
                self._poller(dc, key).wake()
        failing = self.failures.last_error
        if failing:
            dc = sorted(failing)[0]
            reason, detail = failing[dc]
            return ProbeOutcome.failed(reason, f"reads in {dc} fail: {detail}")
        return ProbeOutcome.ok()

    def _count_losses(self) -> None:
        losses = self.tracker.expire(self.clock.monotonic())
        for dc, count in losses.items():
            if dc not in self._losing:
                self._losing.add(dc)
                self.log.warning(
                    "%d sentinel(s) unseen in %s after %g s: counted lost; its lag keeps growing",
                    count,
                    dc,
                    self.settings.sentinel_timeout,
                )
        for dc in list(self._losing):
            if self.tracker.targets[dc].lost_unseen_since is None:
                self._losing.discard(dc)
                self.log.info("sentinels are seen in %s again", dc)

    async def _refresh_readers(self) -> dict[str, frozenset[ReaderKey]]:
        """Each read datacenter's readers now; what was kept for a reader that is gone goes.

        Its poller stops, no sentinel waits for it any more, its failures and its host are
        forgotten: a node that left the cluster leaves no series and no lag behind.
        """
        readers = {dc: await self.replicas.readers(dc) for dc in self.targets}
        gone = await stop_others(
            self._pollers, {(dc, key) for dc, keys in readers.items() for key in keys}
        )
        for dc, keys in readers.items():
            self.tracker.retain(dc, keys)
            self.failures.retain(dc, keys)
        current = {key for keys in readers.values() for key in keys}
        self.replicas.forget({key for _, key in gone} - current)
        return readers

    @property
    def readers(self) -> list[tuple[str, ReaderKey]]:
        """Every (datacenter, reader) being polled: the datacenter, or each of its replicas."""
        return list(self._pollers)

    def _poller(self, dc: str, key: ReaderKey) -> CadencedPoller:
        poller = self._pollers.get((dc, key))
        if poller is None:

            async def read() -> None:
                await self._read(dc, key)

            def due() -> float | None:
                return 0.0 if self.tracker.wants(dc, key) else None

            poller = CadencedPoller(
                f"{self.name}:{dc}" + (f":{key}" if key is not None else ""),
                read,
                due,
                period=self.settings.poll_interval,
                limit=1,  # see poller: never queue reads on a stalled node
                clock=self.clock,
            )
            self._pollers[(dc, key)] = poller
        poller.start()
        return poller

    # --- background reads -----------------------------------------------------------

    async def _read(self, dc: str, key: ReaderKey) -> None:
        sent = self.clock.monotonic()
        seen: int | None = None
        try:
            statement = await self.connection.prepare(self._select)
            rows = await self.connection.execute(
                statement,
                (self.writer_id, self.source),
                datacenter=dc,
                consistency=Consistency.LOCAL_ONE,
                timeout=self.settings.read_timeout,
                host=self.replicas.host(key),
            )
        except Exception as exc:  # a failed read is a miss: the sentinel could not be read
            self.failures.record(dc, classify(exc), describe(exc), key)
        else:
            self.failures.succeeded(dc, key)
            seen = self._our_sequence(rows)
        self.tracker.observe(dc, key, seen, sent, self.clock.monotonic())

    def _our_sequence(self, rows: list[Any]) -> int | None:
        if not rows:
            return None
        row = rows[0]
        if row.incarnation == self.incarnation:
            return int(row.sequence)
        written = written_at_seconds(row)
        if not self._warned_foreign and written is not None and written > self._started_wall + 5:
            self._warned_foreign = True
            self.log.warning(
                "another exporter writes sentinels as writer_id %r: give each writer its own "
                "monitoring.writer_id, or their lags will be wrong",
                self.writer_id,
            )
        return None

    async def stop(self) -> None:
        for poller in self._pollers.values():
            await poller.stop()

    # --- what it exports --------------------------------------------------------------

    def lag(self, dc: str) -> float | None:
        return self.tracker.lag(dc, self.clock.monotonic())

    def collect(self) -> Iterable[Metric]:
        now = self.clock.monotonic()
        lag = REPLICATION_LAG.family(
            "How long after acknowledgement in the source datacenter a sentinel becomes "
            "readable in the target one: while a sentinel is outstanding the larger of the "
            "oldest unseen one's age (it grows) and the last estimate, else the last "
            "estimate. Exporter's monotonic clock."
        )
        resolution = REPLICATION_LAG_RESOLUTION.family(
            "Width of the interval (last miss to first hit) the last lag estimate is the "
            "midpoint of."
        )
        least = REPLICATION_LAG_LOWER_BOUND.family(
            "The least the target datacenter's staleness can be: while a sentinel is "
            "unseen, how long after its acknowledgement the latest read missed it; else the "
            "newest seen one's last miss."
        )
        most = REPLICATION_LAG_UPPER_BOUND.family(
            "The most the target datacenter's staleness can be now: the newest seen "
            "sentinel's age while a later one is unseen, else its first hit."
        )
        visibility = REPLICATION_VISIBILITY.family(
            "Time from a sentinel's acknowledgement to its visibility in the target "
            "datacenter (midpoint estimates; lost sentinels are not included)."
        )
        lost = REPLICATION_SENTINELS_LOST.family(
            "Sentinels not seen in the target datacenter within the sentinel timeout."
        )
        written = REPLICATION_SENTINELS_WRITTEN.family(
            "Sentinels acknowledged in the source datacenter."
        )
        written.add_metric([self.source], self.written)
        for dc, state in self.tracker.targets.items():
            labels = [self.source, dc]
            value = self.tracker.lag(dc, now)
            if value is not None:
                lag.add_metric(labels, value)
            if state.resolution is not None:
                resolution.add_metric(labels, state.resolution)
            bounds = self.tracker.bounds(dc, now)
            if bounds is not None:
                least.add_metric(labels, bounds[0])
                if bounds[1] is not None:
                    most.add_metric(labels, bounds[1])
            visibility.add_metric(
                labels, state.visibility.cumulative(), sum_value=state.visibility.sum
            )
            lost.add_metric(labels, state.lost)
        yield from (lag, resolution, least, most, visibility, lost, written)
        yield self.failures.family(self.source)
        if self.replicas.per_replica:
            yield from replica_families(self.replica_counts(), self.source)

    def replica_counts(self) -> dict[str, tuple[int, int | None]]:
        """Per datacenter read replica by replica: (its replicas, how many have caught up)."""
        return {
            dc: (len(state.readers), self.tracker.caught_up(dc))
            for dc, state in self.tracker.targets.items()
            if None not in state.readers
        }

    def observations(self) -> Iterable[Observation]:
        now = self.clock.monotonic()
        for dc in self.targets:
            yield Observation(Check.REPLICATION_LAG, dc, self.tracker.lag(dc, now))

    def visibility_progress(self) -> dict[str, tuple[int, tuple[float, ...]]]:
        """Per read datacenter: sentinels seen so far and the newest ones' visibilities
        (oldest first), for distributions kept outside the probe (read-your-writes guidance)."""
        return {
            dc: (state.visibility.count, tuple(state.recent))
            for dc, state in self.tracker.targets.items()
        }
