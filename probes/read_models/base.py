"""What every read-model probe keeps, exports and reports, whatever its method.

One probe instance measures one declared read model and yields its own series of every
family; the kind's collector in `probes.registry` exports each family once, with one series
per read model.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import ClassVar

from prometheus_client.metrics_core import Metric

from exporter.config import ReadModelConfig, SyncMethod
from exporter.config.read_models import EARLY_FAILURES
from exporter.metric_catalogue import (
    READ_MODEL,
    READ_MODEL_QUERIES,
    READ_MODEL_SOURCE_CLOCK_AHEAD,
    READ_MODEL_SYNC_LAG,
    SYNC_CHECKS,
    SYNC_FAILURE_RATIO,
    SYNC_FAILURE_RATIO_LOWER,
    SYNC_FAILURE_RATIO_UPPER,
    SYNC_FAILURES,
    SYNC_WINDOW_CHECKS,
)
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

    def __init__(self, context: ProbeContext, read_model: ReadModelConfig) -> None:
        super().__init__(context, read_model, name=f"read_model:{read_model.name}")
        self.read_model = read_model
        self.datacenter = read_model.datacenter or self.config.datacenters.write
        self.lag: float | None = None
        self.lag_measured_at: float | None = None
        """Monotonic time of the last lag measurement."""
        self.clock_ahead: float = 0.0
        self.queries = 0
        self.checks = 0
        self.failures: dict[SyncFailure, int] = dict.fromkeys(SyncFailure, 0)
        self.window = WindowedCounts(read_model.failure_window, read_model.failure_window_slices)

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

    def expected_requests(self) -> dict[str, float]:
        """Requests a second this read model is expected to send to each datacenter at its
        interval: what the schedule stretch starts from, before anything is measured."""
        return {self.datacenter: 1.0 / self.read_model.interval}

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
        info = READ_MODEL.family("Each declared read model and the method that measures it.")
        lag = READ_MODEL_SYNC_LAG.family(
            "How far the read model trails the write side, as last measured by its method "
            "(refreshed on the read model's schedule; absent before the first measurement and "
            "once three intervals pass without one)."
        )
        ahead = READ_MODEL_SOURCE_CLOCK_AHEAD.family(
            "How far the newest source timestamp (event TIMEUUID or WRITETIME) read in the last "
            "run was ahead of the exporter's clock: clock skew that makes lags read low. 0 when "
            "not ahead."
        )
        queries = READ_MODEL_QUERIES.family("CQL requests the read model's probe has sent.")
        checks = SYNC_CHECKS.family(
            "Writes checked against the read model (audit rows and sentinels)."
        )
        failures = SYNC_FAILURES.family(
            "Checked writes that did not reach the read model correctly, by reason "
            "(missing, mismatch, stale)."
        )
        ratio = SYNC_FAILURE_RATIO.family(
            "Failed checks over checks in the read model's failure window (0..1)."
        )
        lower = SYNC_FAILURE_RATIO_LOWER.family(
            f"Lower end of the 95 % Wilson interval of {SYNC_FAILURE_RATIO.name}."
        )
        upper = SYNC_FAILURE_RATIO_UPPER.family(
            f"Upper end of the 95 % Wilson interval of {SYNC_FAILURE_RATIO.name}."
        )
        window_checks = SYNC_WINDOW_CHECKS.family(
            "Checks inside the read model's failure window: the sample size behind the ratio."
        )
        name = self.read_model.name
        info.add_metric([name], {"method": self.read_model.method.value})
        current = self.current_lag()
        if current is not None:
            lag.add_metric([name], current)
        ahead.add_metric([name], self.clock_ahead)
        queries.add_metric([name], self.queries)
        if self.read_model.checks_sync:
            checks.add_metric([name], self.checks)
            for reason, count in self.failures.items():
                failures.add_metric([name, reason.value], count)
            estimate_ = self.ratio()
            window_checks.add_metric([name], 0 if estimate_ is None else estimate_.trials)
            if estimate_ is not None:
                ratio.add_metric([name], estimate_.ratio)
                lower.add_metric([name], estimate_.lower)
                upper.add_metric([name], estimate_.upper)
        yield from (info, lag, ahead, queries, checks, failures, ratio, lower, upper,
                    window_checks)
