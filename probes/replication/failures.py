"""Visibility reads that failed, by reason: what the writer and the heartbeat probes share."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from prometheus_client.core import CounterMetricFamily

from exporter.metric_catalogue import REPLICATION_READ_FAILURES
from exporter.results import FailureReason
from probes.replication.tracker import ReaderKey


class ReadFailures:
    """Visibility reads that failed, per target datacenter and bounded reason."""

    def __init__(self, targets: Iterable[str]) -> None:
        self.counts = {dc: dict.fromkeys(FailureReason, 0) for dc in targets}
        self._failing: dict[str, dict[ReaderKey, tuple[FailureReason, str]]] = {}
        """Per datacenter, each reader's latest failure; the reader's next success clears it."""

    def record(
        self, dc: str, reason: FailureReason, detail: str, reader: ReaderKey = None
    ) -> None:
        self.counts[dc][reason] += 1
        self._failing.setdefault(dc, {})[reader] = (reason, detail)

    def succeeded(self, dc: str, reader: ReaderKey = None) -> None:
        failing = self._failing.get(dc, {})
        failing.pop(reader, None)
        if not failing:
            self._failing.pop(dc, None)

    def retain(self, dc: str, readers: Collection[ReaderKey]) -> None:
        """Forget the failures of readers the datacenter no longer has."""
        failing = self._failing.get(dc, {})
        for reader in [r for r in failing if r not in readers]:
            del failing[reader]
        if not failing:
            self._failing.pop(dc, None)

    @property
    def last_error(self) -> dict[str, tuple[FailureReason, str]]:
        """Per datacenter with a failing reader: a latest failure (reason, log-safe text)."""
        return {dc: next(iter(failing.values())) for dc, failing in self._failing.items()}

    def family(self, source: str) -> CounterMetricFamily:
        family = REPLICATION_READ_FAILURES.family(
            "Replication visibility reads that failed or timed out, by bounded reason (each "
            "counts as a miss)."
        )
        for dc, counts in self.counts.items():
            for reason, count in counts.items():
                family.add_metric([source, dc, reason.value], count)
        return family
