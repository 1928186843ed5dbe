"""Command and query latency: fixed-rate requests per datacenter, honest p99 over a window.

Background loops (begun in `start`, ended in `stop`) send requests at fixed intended start
times: commands through the write datacenter, the probe's own read in every datacenter,
and each declared read-model query in its datacenters. The scheduled `run` only refreshes
the window's quantiles and reports whether requests succeeded since the last run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import Metric

from exporter.config import Consistency
from exporter.config.latency import BUILTIN_QUERY, LatencyConfig
from exporter.event_loop import LagLog
from exporter.metric_catalogue import (
    COMMAND_DURATION,
    COMMAND_LATENCY_LAGGED_SAMPLES,
    COMMAND_LATENCY_P99,
    COMMAND_LATENCY_SAMPLES,
    COMMAND_LATENCY_WINDOW,
    LATENCY_MISSED_SLOTS,
    QUERY_DURATION,
    QUERY_LATENCY_LAGGED_SAMPLES,
    QUERY_LATENCY_P99,
    QUERY_LATENCY_SAMPLES,
    QUERY_LATENCY_WINDOW,
    REQUEST_FAILURES,
    GaugeSpec,
    SummarySpec,
)
from exporter.quantiles import latency_buckets
from exporter.results import Check, FailureReason, Observation, ProbeOutcome
from probes.base import Probe, ProbeContext
from probes.latency.requests import CommandWrite, DeclaredRead, KeyPool, ProbeRead
from probes.latency.series import LatencySeries, Operation, SeriesKey
from probes.latency.timing import FixedRateLoop, TimedRequest

QUANTILES = (("0.5", "p50"), ("0.99", "p99"), ("0.999", "p999"), ("1", "max"))


@dataclass(frozen=True)
class WindowSpecs:
    """The window metrics of one operation: p99, the quantile summary, samples, lagged ones."""

    p99: GaugeSpec
    quantiles: SummarySpec
    samples: GaugeSpec
    lagged: GaugeSpec


WINDOW_GAUGES = {
    Operation.COMMAND: WindowSpecs(
        COMMAND_LATENCY_P99,
        COMMAND_LATENCY_WINDOW,
        COMMAND_LATENCY_SAMPLES,
        COMMAND_LATENCY_LAGGED_SAMPLES,
    ),
    Operation.QUERY: WindowSpecs(
        QUERY_LATENCY_P99,
        QUERY_LATENCY_WINDOW,
        QUERY_LATENCY_SAMPLES,
        QUERY_LATENCY_LAGGED_SAMPLES,
    ),
}


class LatencyProbe(Probe):
    kind = "latency"
    schedule: LatencyConfig

    def __init__(self, context: ProbeContext, schedule: LatencyConfig, name: str = "") -> None:
        super().__init__(context, schedule, name)
        config = self.config
        latency = schedule
        thresholds = config.thresholds
        self.bounds = latency_buckets(
            (thresholds.query_latency_p99, thresholds.command_latency_p99),
            highest=latency.timeout,
        )
        self.lags = LagLog()
        """Fed by every stream's wake-ups; flags timings taken while the loop was late."""
        self._rng = random.Random()
        self.loops: list[FixedRateLoop] = []
        self.key_pools: list[KeyPool] = []
        self._tasks: list[asyncio.Task[None]] = []

        command_consistency = latency.command_consistency or config.consistency.command
        query_consistency = latency.query_consistency or config.consistency.query
        self._add(
            CommandWrite(self.connection, config, command_consistency),
            SeriesKey(Operation.COMMAND, config.datacenters.write, command_consistency.value),
            latency.rate,
        )
        for dc in config.datacenters.all:
            self._add(
                ProbeRead(self.connection, config, dc, query_consistency, self._rng),
                SeriesKey(Operation.QUERY, dc, query_consistency.value, BUILTIN_QUERY),
                latency.rate,
            )
        for query in latency.queries:
            datacenters = query.datacenters or list(config.datacenters.all)
            pool = None
            if query.key_query is not None:
                pool = KeyPool(
                    self.connection, query, datacenters, self._rng, self.clock.monotonic
                )
                self.key_pools.append(pool)
            consistency: Consistency = query.consistency or query_consistency
            for dc in datacenters:
                self._add(
                    DeclaredRead(self.connection, query, dc, consistency, pool),
                    SeriesKey(Operation.QUERY, dc, consistency.value, query.name),
                    query.rate or latency.rate,
                )
        # Spread the streams' slots over the period: requests sent together would queue
        # behind each other in this process and time that queueing as latency.
        for index, loop in enumerate(self.loops):
            loop.phase = index / len(self.loops)

    def _add(self, request: TimedRequest, key: SeriesKey, rate: float) -> None:
        latency = self.schedule
        series = LatencySeries.create(
            key,
            timeout=latency.timeout,
            window=latency.window,
            slices=latency.window_slices,
            bounds=self.bounds,
            clock=self.clock.monotonic,
            warm_until=self.context.starting_until,
        )
        self.loops.append(
            FixedRateLoop(
                request,
                series,
                rate=rate,
                timeout=latency.timeout,
                lags=self.lags,
                lag_flag=latency.loop_lag_flag,
                clock=self.clock.monotonic,
                drain=self._drain_answers,
            )
        )

    def _drain_answers(self) -> None:
        """Settle the timed requests answered since any stream last woke."""
        self.connection.drain_answers()

    @property
    def series(self) -> list[LatencySeries]:
        return [loop.series for loop in self.loops]

    def series_for(self, operation: Operation, datacenter: str, query: str = "") -> LatencySeries:
        for series in self.series:
            key = series.key
            if (key.operation, key.datacenter, key.query) == (operation, datacenter, query):
                return series
        raise KeyError(f"no {operation.value} series for {datacenter!r} {query!r}")

    async def start(self) -> None:
        if self._tasks:
            return
        for pool in self.key_pools:
            self._tasks.append(
                asyncio.create_task(pool.run(), name=f"latency-keys-{pool.query.name}")
            )
        for loop in self.loops:
            key = loop.series.key
            self._tasks.append(
                asyncio.create_task(
                    loop.run(), name=f"latency-{key.operation.value}-{key.component}"
                )
            )

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def run(self) -> ProbeOutcome:
        for series in self.series:
            series.refresh()
            # Each refresh takes a millisecond or two: let the loop breathe in between.
            await asyncio.sleep(0)
        return self._outcome()

    def _outcome(self) -> ProbeOutcome:
        waiting = [(loop.series.key, loop.not_ready) for loop in self.loops if loop.not_ready]
        failing = [s for s in self.series if s.failures_since_report]
        latest = max(
            (s for s in failing if s.last_failure is not None),
            key=lambda s: s.last_failure.at if s.last_failure else 0.0,
            default=None,
        )
        details = [f"{key.describe}: {why}" for key, (_, why) in waiting]
        details += [
            f"{s.key.describe}: {s.failures_since_report} failed or missed"
            + (f" (last: {s.last_failure.detail})" if s.last_failure else "")
            for s in failing
        ]
        for series in failing:
            series.failures_since_report = 0
        if latest is not None and latest.last_failure is not None:
            return ProbeOutcome.failed(latest.last_failure.reason, "; ".join(details))
        if waiting:
            return ProbeOutcome.failed(waiting[0][1][0], "; ".join(details))
        return ProbeOutcome.ok()

    def _by_operation(self, operation: Operation) -> Iterator[LatencySeries]:
        return (s for s in self.series if s.key.operation is operation)

    def collect(self) -> Iterable[Metric]:
        yield from self._histograms()
        yield from self._window_gauges(Operation.COMMAND)
        yield from self._window_gauges(Operation.QUERY)
        yield from self._counters()

    def _histograms(self) -> Iterator[Metric]:
        command = COMMAND_DURATION.family(
            "Latency of the probe's commands (writes into the monitoring keyspace through "
            "the write datacenter), from each request's intended start (less any wait for "
            "the request budget); timeouts, errors and missed slots count at the timeout."
        )
        query = QUERY_DURATION.family(
            "Latency of the probe's queries per datacenter (query=\"\": the probe's own read; "
            "otherwise a declared read-model query), from each request's intended start (less "
            "any wait for the request budget); timeouts, errors and missed slots count at the "
            "timeout."
        )
        for series in self.series:
            key = series.key
            if key.operation is Operation.COMMAND:
                command.add_metric(
                    [key.datacenter, key.consistency],
                    series.buckets.buckets(),
                    series.buckets.sum,
                )
            else:
                query.add_metric(
                    [key.datacenter, key.consistency, key.query],
                    series.buckets.buckets(),
                    series.buckets.sum,
                )
        yield from (command, query)

    def _window_gauges(self, operation: Operation) -> Iterator[Metric]:
        specs = WINDOW_GAUGES[operation]
        window = self.schedule.window
        what = f"over the last {window:g} s (refreshed every {self.schedule.interval:g} s)"
        p99 = specs.p99.family(
            f"p99 {operation.value} latency from the in-process HDR histogram {what}; "
            f"absent until there are samples. Judge it with {specs.samples.name}."
        )
        quantiles = specs.quantiles.family(
            f"{operation.value.capitalize()} latency quantiles (quantile=\"1\" is the maximum) "
            f"{what}, as a summary of the window: _count is its samples, _sum their total."
        )
        samples = specs.samples.family(f"Samples behind {specs.p99.name} {what}.")
        lagged = specs.lagged.family(
            f"Samples {what} timed while the exporter's event loop was late by more than "
            f"{self.schedule.loop_lag_flag:g} s: their latency is inflated by the exporter."
        )
        labels = specs.p99.labels
        for series in self._by_operation(operation):
            key = series.key
            # Commands have no query label; queries always do ("" for the probe's own read).
            values = [key.datacenter, key.query][: len(labels)]
            snapshot = series.snapshot
            samples.add_metric(values, snapshot.count)
            lagged.add_metric(values, series.lagged_in_window)
            if snapshot.count:
                assert snapshot.p99 is not None
                p99.add_metric(values, snapshot.p99)
                specs.quantiles.add(
                    quantiles,
                    values,
                    {label: getattr(snapshot, attribute) for label, attribute in QUANTILES},
                    count=snapshot.count,
                    total=snapshot.sum,
                )
        yield from (p99, quantiles, samples, lagged)

    def _counters(self) -> Iterator[Metric]:
        failures = REQUEST_FAILURES.family(
            "Timed requests that failed, by bounded reason (each also counts at the timeout "
            "in the duration histograms)."
        )
        missed = LATENCY_MISSED_SLOTS.family(
            "Fixed-rate slots for which no request was sent because earlier ones were still "
            "in flight past their timeout (each counts at the timeout in the histograms)."
        )
        failure_totals: dict[tuple[str, str, str], int] = {}
        missed_totals: dict[tuple[str, str], int] = {}
        for series in self.series:
            key = series.key
            for reason in FailureReason:
                index = (key.operation.value, key.datacenter, reason.value)
                failure_totals[index] = failure_totals.get(index, 0) + series.failures[reason]
            index2 = (key.operation.value, key.datacenter)
            missed_totals[index2] = missed_totals.get(index2, 0) + series.missed
        for labels, count in failure_totals.items():
            failures.add_metric(list(labels), count)
        for labels2, count in missed_totals.items():
            missed.add_metric(list(labels2), count)
        yield from (failures, missed)

    def observations(self) -> Iterable[Observation]:
        minimum = self.schedule.min_samples
        for series in self.series:
            key = series.key
            check = (
                Check.COMMAND_LATENCY_P99
                if key.operation is Operation.COMMAND
                else Check.QUERY_LATENCY_P99
            )
            snapshot = series.snapshot
            yield Observation(
                check,
                key.component,
                snapshot.p99 if snapshot.count else None,
                samples=snapshot.count,
                sufficient=snapshot.count >= minimum,
            )

    def debug_state(self) -> dict[str, Any]:
        """In-flight and issued counts per series (for benchmarks and troubleshooting)."""
        return {
            loop.series.key.describe: {"in_flight": loop.in_flight, "issued": loop.issued}
            for loop in self.loops
        }
