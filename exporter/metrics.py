"""The /metrics view: a custom collector over cached state, registered on our own registry.

`collect` runs on the event loop at scrape time and does no I/O: every value was left
behind by a probe run on the probe's own schedule. The families it yields are new objects
each time, which is what lets `exporter.app` format them in another thread.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.results import FailureReason

if TYPE_CHECKING:
    from exporter.service import Exporter


class ExporterCollector(Collector):
    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterable[Metric]:
        exporter = self._exporter
        build = InfoMetricFamily(
            "cqrs_exporter_build", "Version of the CQRS exporter and of its Python runtime."
        )
        build.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield build

        yield GaugeMetricFamily(
            "cqrs_up",
            "1 while Cassandra answers the exporter (a session is established and a datacenter "
            "answered the last reachability probe), 0 otherwise.",
            value=1.0 if exporter.cassandra_up() else 0.0,
        )

        success = GaugeMetricFamily(
            "cqrs_probe_success",
            "1 if the probe's last run succeeded, 0 if it failed.",
            labels=["probe"],
        )
        duration = GaugeMetricFamily(
            "cqrs_probe_duration_seconds", "How long the probe's last run took.", labels=["probe"]
        )
        last_success = GaugeMetricFamily(
            "cqrs_probe_last_success_timestamp_seconds",
            "Unix time at which the probe last succeeded.",
            labels=["probe"],
        )
        runs = CounterMetricFamily("cqrs_probe_runs", "Probe runs completed.", labels=["probe"])
        failures = CounterMetricFamily(
            "cqrs_probe_failures", "Probe runs that failed, by reason.", labels=["probe", "reason"]
        )
        skipped = CounterMetricFamily(
            "cqrs_probe_skipped_runs",
            "Scheduled probe runs skipped because the previous run was still going.",
            labels=["probe"],
        )
        for name, state in exporter.runner.states.items():
            if state.last_outcome is not None:
                success.add_metric([name], 1.0 if state.last_outcome.success else 0.0)
            if state.last_duration is not None:
                duration.add_metric([name], state.last_duration)
            if state.last_success_time is not None:
                last_success.add_metric([name], state.last_success_time)
            runs.add_metric([name], state.runs)
            skipped.add_metric([name], state.skipped)
            for reason in FailureReason:
                failures.add_metric([name, reason.value], state.failures[reason])
        yield from (success, duration, last_success, runs, failures, skipped)

        for probe in exporter.probes:
            yield from probe.collect()
        yield from exporter.extra_metrics()


def build_registry(exporter: Exporter) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(exporter))
    return registry
