"""Visibility reads that failed, by reason: what the writer and the heartbeat probes share."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily

from exporter.metric_catalogue import REPLICATION_READ_FAILURES
from exporter.results import FailureReason


class ReadFailures:
    """Visibility reads that failed, per target datacenter and bounded reason."""

    def __init__(self, targets: Iterable[str]) -> None:
        self.counts = {dc: dict.fromkeys(FailureReason, 0) for dc in targets}
        self.last_error: dict[str, tuple[FailureReason, str]] = {}
        """The latest failure (reason, log-safe description) per datacenter; a success clears it."""

    def record(self, dc: str, reason: FailureReason, detail: str) -> None:
        self.counts[dc][reason] += 1
        self.last_error[dc] = (reason, detail)

    def succeeded(self, dc: str) -> None:
        self.last_error.pop(dc, None)

    def family(self, source: str) -> CounterMetricFamily:
        family = REPLICATION_READ_FAILURES.family(
            "Replication visibility reads that failed or timed out, by bounded reason (each "
            "counts as a miss)."
        )
        for dc, counts in self.counts.items():
            for reason, count in counts.items():
                family.add_metric([source, dc, reason.value], count)
        return family
