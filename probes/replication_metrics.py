"""Metric families the replication probes share: the label names, and read failures by reason."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily

from exporter.results import FailureReason

PAIR_LABELS = ["source_datacenter", "target_datacenter"]


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
        family = CounterMetricFamily(
            "cqrs_replication_read_failures",
            "Replication visibility reads that failed or timed out, by bounded reason (each "
            "counts as a miss).",
            labels=[*PAIR_LABELS, "reason"],
        )
        for dc, counts in self.counts.items():
            for reason, count in counts.items():
                family.add_metric([source, dc, reason.value], count)
        return family
