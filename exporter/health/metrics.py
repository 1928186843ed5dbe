"""The health verdicts as metrics: state sets per check, component and group, and thresholds.

Every series comes from the latest snapshot; nothing here evaluates or does I/O. Each state
set carries one series per status (1 for the current one, 0 for the others), so the series
exist before the first breach and `== 1` selects the current state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import metric_catalogue as catalogue
from exporter.config import Config
from exporter.health.snapshot import HealthSnapshot
from exporter.health.verdicts import Status, threshold_for
from exporter.results import Check


def _states(current: Status) -> Iterable[tuple[str, float]]:
    for status in Status:
        yield status.value, 1.0 if status is current else 0.0


def health_metrics(snapshot: HealthSnapshot, config: Config) -> Iterable[Metric]:
    overall = catalogue.HEALTH_OVERALL_STATUS.family(
        "The overall health verdict as a state set: 1 for the current status, 0 for the others.",
    )
    for status, value in _states(snapshot.overall.status):
        overall.add_metric([status], value)

    checks = catalogue.HEALTH_STATUS.family(
        "Each health check's verdict (worst of its components, after hysteresis) as a state "
        "set: 1 for the current status, 0 for the others. UNKNOWN until a probe reports it.",
    )
    for check in Check:
        aggregate = snapshot.overall.checks.get(check)
        current = aggregate.status if aggregate is not None else Status.UNKNOWN
        for status, value in _states(current):
            checks.add_metric([check.value, status], value)

    components = catalogue.HEALTH_COMPONENT_STATUS.family(
        "Each check component's verdict (per datacenter or read model) as a state set.",
    )
    for items in snapshot.overall.components.values():
        for item in items:
            for status, value in _states(item.status):
                components.add_metric([item.check.value, item.component, status], value)

    groups = catalogue.HEALTH_GROUP_STATUS.family(
        "Each configured health group's verdict (as served at /health/<group>) as a state set.",
    )
    for name, view in snapshot.groups.items():
        for status, value in _states(view.status):
            groups.add_metric([name, status], value)

    thresholds = catalogue.HEALTH_THRESHOLD.family(
        "The configured threshold of each health check, in base units (seconds or a ratio).",
    )
    for check in Check:
        threshold = threshold_for(check, config)
        if threshold is not None:
            thresholds.add_metric([check.value], threshold)

    yield from (overall, checks, components, groups, thresholds)
    if snapshot.evaluated_at is not None:
        yield catalogue.HEALTH_LAST_EVALUATION.family(
            "Unix time of the last health evaluation (they run on a fixed cadence).",
            value=snapshot.evaluated_at,
        )


class HealthCollector(Collector):
    """The health metrics of whatever snapshot `snapshot` gives at scrape time."""

    def __init__(self, snapshot: Callable[[], HealthSnapshot], config: Config) -> None:
        self._snapshot = snapshot
        self._config = config

    def collect(self) -> Iterable[Metric]:
        return health_metrics(self._snapshot(), self._config)
