"""The exporter's own metrics registry, and the runner's self metrics on it.

The registry holds one collector per concern, in the order /metrics shows them: the
runner's self metrics, one per probe family, health, the event loop. Each collector reads
only the narrow state it is given, on the event loop at scrape time, and does no I/O:
every value was left behind by a probe run on the probe's own schedule. The families each
`collect` yields are new objects every time, which is what lets `exporter.app` format them
in another thread.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter import metric_catalogue as catalogue
from exporter.budget import SHARES, RequestBudget
from exporter.config import BudgetConfig, ShardingConfig
from exporter.results import FailureReason
from exporter.scheduler import ProbeRunner, ProbeRunState
from exporter.series_guard import GuardedRegistry


class RunnerCollector(Collector):
    """Build info, whether Cassandra answers, and what each probe's runs left in the runner."""

    def __init__(self, states: Mapping[str, ProbeRunState], up: Callable[[], bool]) -> None:
        self._states = states
        self._up = up

    def collect(self) -> Iterable[Metric]:
        build = catalogue.EXPORTER_BUILD.family(
            "Version of the CQRS exporter and of its Python runtime.",
        )
        build.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield build

        yield catalogue.UP.family(
            "1 while Cassandra answers the exporter (a session is established and a datacenter "
            "answered the last reachability probe), 0 otherwise.",
            value=1.0 if self._up() else 0.0,
        )

        success = catalogue.PROBE_SUCCESS.family(
            "1 if the probe's last run succeeded, 0 if it failed.",
        )
        duration = catalogue.PROBE_DURATION.family("How long the probe's last run took.")
        last_success = catalogue.PROBE_LAST_SUCCESS.family(
            "Unix time at which the probe last succeeded.",
        )
        runs = catalogue.PROBE_RUNS.family("Probe runs completed.")
        failures = catalogue.PROBE_FAILURES.family("Probe runs that failed, by reason.")
        skipped = catalogue.PROBE_SKIPPED.family(
            "Scheduled probe runs skipped because the previous run was still going.",
        )
        for name, state in self._states.items():
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


def build_registry(
    collectors: Iterable[Collector], max_series: int = BudgetConfig().max_series
) -> CollectorRegistry:
    """A registry of its own (not the process-wide default), collecting in the given order,
    then the standard process, platform and garbage-collector metrics (`process_*`,
    `python_*`), so the exporter's own CPU and memory show beside what it measures. It keeps
    the exposition under `max_series` (`exporter.series_guard`)."""
    registry = GuardedRegistry(max_series)
    for collector in collectors:
        registry.register(collector)
    # Each registers itself on the registry it is given.
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class BudgetCollector(Collector):
    """The request budget per datacenter, the read models' schedule stretch, the runs' drift,
    and this exporter's shard."""

    def __init__(
        self,
        budget: RequestBudget,
        runner: ProbeRunner,
        read_models: Mapping[str, str],
        sharding: ShardingConfig,
    ) -> None:
        """`read_models`: probe name → read model name."""
        self._budget = budget
        self._runner = runner
        self._read_models = read_models
        self._sharding = sharding

    def collect(self) -> Iterable[Metric]:
        shard = catalogue.EXPORTER_SHARD.family(
            "This exporter's shard: index of count (1 when unsharded). Read models and "
            "declared queries are split by hashmod of their names; shard 0 runs replication."
        )
        shard.add_metric([], {"index": str(self._sharding.index),
                              "count": str(self._sharding.count)})
        yield shard
        limit = catalogue.BUDGET_REQUESTS_PER_SECOND.family(
            "The request budget: requests a second the exporter may send to the datacenter, "
            "all probes together."
        )
        requests = catalogue.BUDGET_REQUESTS.family(
            "Requests sent to the datacenter under the budget, by share (reserved: "
            "replication, latency, reachability; read_models: the rest)."
        )
        wait = catalogue.BUDGET_WAIT.family(
            "Time requests waited for the budget before they were sent, by share."
        )
        gave_up = catalogue.BUDGET_GAVE_UP.family(
            "Requests not sent because no budget token would come before their run's "
            "deadline (the run ended with what it had), by share."
        )
        stretch = catalogue.BUDGET_SCHEDULE_STRETCH.family(
            "How far the read models' schedules in the datacenter are stretched to fit the "
            "budget: 1 at their intervals, 2 at twice as long."
        )
        stretcher = self._runner.stretch
        for dc, bucket in self._budget.buckets.items():
            limit.add_metric([dc], bucket.budget)
            for share in SHARES:
                requests.add_metric([dc, share], bucket.requests[share])
                wait.add_metric([dc, share], bucket.wait_seconds[share])
                gave_up.add_metric([dc, share], bucket.gave_up[share])
            ratio = 1.0 if stretcher is None else stretcher.datacenter_stretch.get(dc, 1.0)
            stretch.add_metric([dc], ratio)
        yield from (limit, requests, wait, gave_up, stretch)
        models = catalogue.READ_MODEL_SCHEDULE_STRETCH.family(
            "How far the read model's schedule is stretched to fit the request budget: its "
            "runs are this many times its interval apart."
        )
        for probe, name in self._read_models.items():
            models.add_metric([name], 1.0 if stretcher is None else stretcher.stretch(probe))
        yield models
        drift = catalogue.PROBE_SCHEDULE_DRIFT.family(
            "How late probe runs started against their schedule."
        )
        drift.add_metric([], self._runner.drift.buckets(), self._runner.drift.total)
        yield drift
