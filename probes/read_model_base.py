"""What every read-model probe keeps, exports and reports, whatever its method.

One probe instance measures one declared read model. The instances share a
`ReadModelGroup`, whose first member yields the metric families for all of them, so that each
family appears once in /metrics with one series per read model.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import ClassVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.config import ReadModelConfig, SyncMethod
from exporter.config.read_models import EARLY_FAILURES
from exporter.results import Check, Observation
from exporter.stats import RatioEstimate, WindowedCounts, estimate
from probes.base import Probe, ProbeContext

STALE_AFTER_INTERVALS = 3
"""A lag not refreshed for this many intervals is no longer reported (the probe is failing)."""


class SyncFailure(StrEnum):
    """Why a write did not reach a read model correctly (the bounded `reason` label)."""

    MISSING = "missing"
    """The read model has no row for the write after the grace period."""
    MISMATCH = "mismatch"
    """The read model's row was written after the write but a compared field differs."""
    STALE = "stale"
    """The read model's row is older than the write and still differs after the grace period."""


class ReadModelBase(Probe):
    """Lag, checks and failures of one read model; subclasses implement one method's `run`."""

    kind = "read_model"
    method: ClassVar[SyncMethod]

    def __init__(self, context: ProbeContext, read_model: ReadModelConfig,
                 group: ReadModelGroup) -> None:
        super().__init__(context, read_model, name=f"read_model:{read_model.name}")
        self.read_model = read_model
        self.group = group
        group.members.append(self)
        self.datacenter = read_model.datacenter or self.config.datacenters.write
        self.lag: float | None = None
        self.lag_measured_at: float | None = None
        """Monotonic time of the last lag measurement."""
        self.clock_ahead: float = 0.0
        self.queries = 0
        self.checks = 0
        self.failures: dict[SyncFailure, int] = dict.fromkeys(SyncFailure, 0)
        self.window = WindowedCounts(read_model.failure_window, read_model.failure_window_slices)

    @classmethod
    def build(cls, context: ProbeContext) -> list[Probe]:
        """Method probes are built together by `probes.read_models.ReadModelProbe`."""
        return []

    # --- what runs record ----------------------------------------------------------

    def set_lag(self, seconds: float) -> None:
        self.lag = max(0.0, seconds)
        self.lag_measured_at = self.clock.monotonic()

    def set_clock_ahead(self, source_seconds: list[float], now: float) -> None:
        """How far the newest source time read in a run lay ahead of our clock (skew, not lag)."""
        if source_seconds:
            self.clock_ahead = max(0.0, max(source_seconds) - now)

    def record_check(self, failure: SyncFailure | None) -> None:
        self.checks += 1
        if failure is not None:
            self.failures[failure] += 1
        self.window.add(self.clock.monotonic(), 1, 0 if failure is None else 1)

    # --- what is read without I/O --------------------------------------------------

    def current_lag(self) -> float | None:
        """The last measured lag, or None before the first or once it has gone stale."""
        if self.lag is None or self.lag_measured_at is None:
            return None
        stale = STALE_AFTER_INTERVALS * self.read_model.interval
        if self.clock.monotonic() - self.lag_measured_at > stale:
            return None
        return self.lag

    def ratio(self) -> RatioEstimate | None:
        trials, failures = self.window.totals(self.clock.monotonic())
        return estimate(failures, trials)

    def observations(self) -> Iterable[Observation]:
        name = self.read_model.name
        yield Observation(Check.READ_MODEL_SYNC_LAG, name, self.current_lag())
        if not self.read_model.checks_sync:
            return
        ratio = self.ratio()
        if ratio is None:
            yield Observation(Check.SYNC_FAILURE_RATE, name, None, samples=0, sufficient=False)
            return
        # Few checks say little; a few failures in them say too much (the Wilson lower bound
        # runs high for one to three failures), unless there are enough failures to trust.
        sufficient = (ratio.trials >= self.read_model.min_checks
                      or ratio.failures >= EARLY_FAILURES)
        yield Observation(
            Check.SYNC_FAILURE_RATE,
            name,
            ratio.ratio,
            compared=ratio.lower,
            samples=ratio.trials,
            sufficient=sufficient,
        )

    def collect(self) -> Iterable[Metric]:
        if self.group.members and self.group.members[0] is self:
            yield from self.group.collect()


class ReadModelGroup:
    """The read-model probes of one exporter; yields each metric family once for all."""

    def __init__(self) -> None:
        self.members: list[ReadModelBase] = []

    def collect(self) -> Iterable[Metric]:
        info = InfoMetricFamily(
            "cqrs_read_model", "Each declared read model and the method that measures it.",
            labels=["read_model"],
        )
        lag = GaugeMetricFamily(
            "cqrs_read_model_sync_lag_seconds",
            "How far the read model trails the write side, as last measured by its method "
            "(refreshed on the read model's schedule; absent before the first measurement and "
            "once three intervals pass without one).",
            labels=["read_model"],
        )
        ahead = GaugeMetricFamily(
            "cqrs_read_model_source_clock_ahead_seconds",
            "How far the newest source timestamp (event TIMEUUID or WRITETIME) read in the last "
            "run was ahead of the exporter's clock: clock skew that makes lags read low. 0 when "
            "not ahead.",
            labels=["read_model"],
        )
        queries = CounterMetricFamily(
            "cqrs_read_model_queries",
            "CQL requests the read model's probe has sent.",
            labels=["read_model"],
        )
        checks = CounterMetricFamily(
            "cqrs_sync_checks",
            "Writes checked against the read model (audit rows and sentinels).",
            labels=["read_model"],
        )
        failures = CounterMetricFamily(
            "cqrs_sync_failures",
            "Checked writes that did not reach the read model correctly, by reason "
            "(missing, mismatch, stale).",
            labels=["read_model", "reason"],
        )
        ratio = GaugeMetricFamily(
            "cqrs_sync_failure_ratio",
            "Failed checks over checks in the read model's failure window (0..1).",
            labels=["read_model"],
        )
        lower = GaugeMetricFamily(
            "cqrs_sync_failure_ratio_lower",
            "Lower end of the 95 % Wilson interval of cqrs_sync_failure_ratio.",
            labels=["read_model"],
        )
        upper = GaugeMetricFamily(
            "cqrs_sync_failure_ratio_upper",
            "Upper end of the 95 % Wilson interval of cqrs_sync_failure_ratio.",
            labels=["read_model"],
        )
        window_checks = GaugeMetricFamily(
            "cqrs_sync_window_checks",
            "Checks inside the read model's failure window: the sample size behind the ratio.",
            labels=["read_model"],
        )
        for probe in self.members:
            name = probe.read_model.name
            info.add_metric([name], {"method": probe.read_model.method.value})
            current = probe.current_lag()
            if current is not None:
                lag.add_metric([name], current)
            ahead.add_metric([name], probe.clock_ahead)
            queries.add_metric([name], probe.queries)
            if not probe.read_model.checks_sync:
                continue
            checks.add_metric([name], probe.checks)
            for reason, count in probe.failures.items():
                failures.add_metric([name, reason.value], count)
            estimate_ = probe.ratio()
            window_checks.add_metric([name], 0 if estimate_ is None else estimate_.trials)
            if estimate_ is not None:
                ratio.add_metric([name], estimate_.ratio)
                lower.add_metric([name], estimate_.lower)
                upper.add_metric([name], estimate_.upper)
        yield from (info, lag, ahead, queries, checks, failures, ratio, lower, upper,
                    window_checks)
