"""One timed stream of requests (an operation in a datacenter), and everything it recorded."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from exporter.quantiles import BucketHistogram, QuantileSnapshot, SlidingHistogram
from exporter.results import FailureReason


class Operation(StrEnum):
    COMMAND = "command"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class SeriesKey:
    operation: Operation
    datacenter: str
    consistency: str
    query: str = ""
    """The declared query's name; empty for the probe's own read (and for commands)."""

    @property
    def component(self) -> str:
        """The health component: the datacenter, or `<datacenter>/<query>`."""
        return f"{self.datacenter}/{self.query}" if self.query else self.datacenter

    @property
    def describe(self) -> str:
        what = f"query {self.query}" if self.query else self.operation.value
        return f"{what} in {self.datacenter}"


@dataclass(frozen=True, slots=True)
class Failure:
    reason: FailureReason
    detail: str
    """For the log only."""
    at: float


@dataclass
class LatencySeries:
    """The sliding window, the Prometheus buckets and the counters of one stream.

    Every sample enters both the window and the buckets: successes at their latency from
    the intended start, failures and missed slots at the timeout. While the exporter starts
    (until `warm_until`) and the stream has not succeeded yet, failures and missed slots are
    counted but not sampled: a stream that has never worked in a cluster still coming up (a
    cold connection pool) says nothing of latency, and would hold the window's p99 at the
    timeout for a whole window. After the startup grace they are samples again: a
    datacenter down since before the exporter started is an outage, not warm-up.
    """

    key: SeriesKey
    timeout: float
    window: SlidingHistogram
    lagged_window: SlidingHistogram
    buckets: BucketHistogram
    clock: Callable[[], float]
    failures: dict[FailureReason, int] = field(
        default_factory=lambda: dict.fromkeys(FailureReason, 0)
    )
    missed: int = 0
    """Slots not issued: the previous requests still held every permitted slot."""
    failures_since_report: int = 0
    last_failure: Failure | None = None
    snapshot: QuantileSnapshot = field(default_factory=QuantileSnapshot.empty)
    lagged_in_window: int = 0
    succeeded: bool = False
    """A request of this stream has succeeded: from then on every request is a sample."""
    warm_until: float = -math.inf
    """The exporter's startup grace ends then (on `clock`)."""

    @classmethod
    def create(
        cls,
        key: SeriesKey,
        *,
        timeout: float,
        window: float,
        slices: int,
        bounds: Sequence[float],
        clock: Callable[[], float],
        warm_until: float = -math.inf,
    ) -> LatencySeries:
        return cls(
            key=key,
            timeout=timeout,
            window=SlidingHistogram(window, slices, clock=clock, highest=timeout),
            lagged_window=SlidingHistogram(window, slices, clock=clock, highest=timeout),
            buckets=BucketHistogram(bounds),
            clock=clock,
            warm_until=warm_until,
        )

    def _sample(self, seconds: float, lagged: bool, count: int = 1) -> None:
        now = self.clock()
        self.window.record(seconds, count, now=now)
        self.buckets.observe(seconds, count)
        if lagged:
            self.lagged_window.record(seconds, count, now=now)

    def record_success(self, seconds: float, *, lagged: bool = False) -> None:
        self.succeeded = True
        self._sample(min(seconds, self.timeout), lagged)

    def record_failure(self, reason: FailureReason, detail: str, *, lagged: bool = False) -> None:
        self.failures[reason] += 1
        self.failures_since_report += 1
        self.last_failure = Failure(reason, detail, self.clock())
        if self._warm():
            self._sample(self.timeout, lagged)

    def record_missed(self, count: int = 1) -> None:
        """Slots that never got a request: counted at the timeout, so the sample stays whole."""
        if count <= 0:
            return
        self.missed += count
        self.failures_since_report += count
        self.last_failure = Failure(
            FailureReason.TIMEOUT,
            f"{count} slot(s) missed: earlier requests still in flight past their timeout",
            self.clock(),
        )
        if self._warm():
            self._sample(self.timeout, False, count)

    def _warm(self) -> bool:
        """Whether a failure is a latency sample (see the class docstring)."""
        return self.succeeded or self.clock() >= self.warm_until

    def refresh(self) -> QuantileSnapshot:
        """Recompute the window's quantiles (a few milliseconds; call off the scrape path)."""
        self.snapshot = self.window.snapshot()
        self.lagged_in_window = self.lagged_window.count()
        return self.snapshot
