"""The series-count guard: `/metrics` never holds more than `probes.budget.max_series` series.

Past the cap, the read models whose series do not fit (taken in name order, the first kept)
lose every series of theirs: their own families (`read_model`), their probes' self metrics
(`probe="read_model:NAME"`) and their health components. One log line says which when the
set changes; `cqrs_exporter_series_dropped` and `cqrs_exporter_read_models_dropped` say how
many at each scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter import metric_catalogue as catalogue
from exporter.results import Check

log = logging.getLogger(__name__)

_READ_MODEL_CHECKS = frozenset({Check.READ_MODEL_SYNC_LAG.value, Check.SYNC_FAILURE_RATE.value})
PROBE_PREFIX = "read_model:"
SHOWN_NAMES = 10


def read_model_of(sample: Sample) -> str | None:
    """The read model a sample belongs to, or None for a sample of no single read model."""
    labels = sample.labels
    name = labels.get("read_model")
    if name is not None:
        return name
    probe = labels.get("probe")
    if probe is not None and probe.startswith(PROBE_PREFIX):
        return probe[len(PROBE_PREFIX):]
    if labels.get("check") in _READ_MODEL_CHECKS:
        return labels.get("component")
    return None


class GuardedRegistry(CollectorRegistry):
    """A registry whose `collect` keeps the series under `max_series`."""

    def __init__(self, max_series: int) -> None:
        super().__init__(auto_describe=False)
        self.max_series = max_series
        self.dropped: tuple[str, ...] = ()
        """The read models whose series the last collect dropped."""
        self.series_dropped = 0

    def collect(self) -> Iterable[Metric]:
        families = list(super().collect())
        total = sum(len(f.samples) for f in families) + 3  # with the guard's own three
        if total <= self.max_series:
            self._now_dropping((), 0)
            return [*families, *self._own(total)]
        per_model: dict[str, int] = {}
        for family in families:
            for sample in family.samples:
                name = read_model_of(sample)
                if name is not None:
                    per_model[name] = per_model.get(name, 0) + 1
        excess = total - self.max_series
        dropped: list[str] = []
        for name in sorted(per_model, reverse=True):  # the last names go first
            if excess <= 0:
                break
            dropped.append(name)
            excess -= per_model[name]
        gone = frozenset(dropped)
        count = 0
        kept: list[Metric] = []
        for family in families:
            samples = [s for s in family.samples if read_model_of(s) not in gone]
            count += len(family.samples) - len(samples)
            family.samples = samples
            kept.append(family)
        self._now_dropping(tuple(sorted(gone)), count)
        return [*kept, *self._own(total - count)]

    def _now_dropping(self, names: Sequence[str], count: int) -> None:
        self.series_dropped = count
        if tuple(names) == self.dropped:
            return
        if names:
            shown = ", ".join(names[:SHOWN_NAMES])
            more = f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
            log.warning(
                "the exposition would exceed max_series (%d): dropping the series of %d read "
                "models: %s%s", self.max_series, len(names), shown, more,
            )
        else:
            log.info("the exposition fits max_series (%d) again: no series dropped",
                     self.max_series)
        self.dropped = tuple(names)

    def _own(self, exposed: int) -> list[Metric]:
        return [
            catalogue.EXPORTER_SERIES.family(
                "Series in this exposition, after the max_series guard.", value=float(exposed)
            ),
            catalogue.EXPORTER_SERIES_DROPPED.family(
                "Series the max_series guard dropped from this exposition.",
                value=float(self.series_dropped),
            ),
            catalogue.EXPORTER_READ_MODELS_DROPPED.family(
                "Read models whose series the max_series guard dropped from this exposition.",
                value=float(len(self.dropped)),
            ),
        ]
