"""Feeds the SLI counters and the freshness windows from each health evaluation; exports them.

`record` is a health-monitor listener: it runs once per evaluation, on the event loop, and
does no I/O. `collect` and `freshness_report` only read what it left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import metric_catalogue as catalogue
from exporter.clock import Clock
from exporter.config import Config
from exporter.config.health import known_components
from exporter.config.slo import SLO_NAMES
from exporter.health.snapshot import HealthSnapshot
from exporter.slo.freshness import Freshness, VisibilitySource, confidence_label
from exporter.slo.slices import SliceCounters

log = logging.getLogger("exporter.slo")


class SloMonitor(Collector):
    """The SLI counters, the objectives and the read-your-writes guidance."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        sources: Callable[[], Sequence[VisibilitySource]],
    ) -> None:
        self.config = config
        self.clock = clock
        self._sources = sources
        components = known_components(
            config.datacenters, config.read_models, config.probes.latency
        )
        self.slices = SliceCounters({check.value: names for check, names in components.items()})
        freshness = config.slo.freshness
        self.freshness = Freshness(
            freshness.window,
            freshness.confidences,
            config.thresholds.replication_lag,
            freshness.min_samples,
        )

    def record(self, snapshot: HealthSnapshot) -> None:
        """One health evaluation: one slice for each judged component, new visibilities."""
        self.slices.record(snapshot)
        now = self.clock.monotonic()
        for source in self._sources():
            self.freshness.update(source.visibility_progress(), now)

    def freshness_report(self) -> dict[str, Any]:
        """The body of `/freshness` (see docs/slo.md and docs/openapi.yaml)."""
        now = self.clock.monotonic()
        settings = self.config.slo.freshness
        datacenters: dict[str, Any] = {}
        source_name: str | None = None
        for source in self._sources():
            source_name = source.source
            for dc in source.visibility_progress():
                advice = self.freshness.advice(dc, source.lag(dc), now)
                datacenters[dc] = advice.to_json(settings.window, self.freshness.threshold)
        return {
            "source_datacenter": source_name or self.config.datacenters.write,
            "window_seconds": settings.window,
            "confidences": [confidence_label(q) for q in settings.confidences],
            "min_samples": settings.min_samples,
            "datacenters": datacenters,
        }

    def collect(self) -> Iterable[Metric]:
        yield from self.slices.families()
        objective = catalogue.SLO_OBJECTIVE.family(
            "Each SLO's objective: the fraction of slices (or sync checks) that must be good "
            "over the SLO period."
        )
        for slo in SLO_NAMES:
            objective.add_metric([slo], self.config.slo.objective(slo, self.config.thresholds))
        yield objective
        wait = catalogue.READ_YOUR_WRITES_WAIT.family(
            "How long after a command's acknowledgement a read in the target datacenter sees "
            "it with the given probability: that quantile of the sentinel visibilities in the "
            "freshness window. Absent below the window's minimum sample count."
        )
        samples = catalogue.FRESHNESS_SAMPLES.family(
            "Sentinel visibilities in the freshness window the waits are computed from."
        )
        stale = catalogue.FRESHNESS_STALE.family(
            "1 while the target datacenter's replication lag is over its threshold (or unknown): "
            "reads after a command belong in the write datacenter then."
        )
        now = self.clock.monotonic()
        for source in self._sources():
            for dc in source.visibility_progress():
                advice = self.freshness.advice(dc, source.lag(dc), now)
                labels = [source.source, dc]
                samples.add_metric(labels, advice.samples)
                stale.add_metric(labels, 1.0 if advice.stale else 0.0)
                for confidence, value in advice.waits.items():
                    if value is not None:
                        wait.add_metric([*labels, confidence], value)
        yield from (wait, samples, stale)
