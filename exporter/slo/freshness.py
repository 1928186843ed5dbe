"""Read-your-writes guidance from each read datacenter's recent sentinel visibilities.

The wait at confidence p is the p-quantile (nearest rank) of the visibilities seen in the
window: a read sent that long after a command's acknowledgement would have seen that share
of the sentinels. That is probabilistically bounded staleness (Bailis et al., VLDB 2012),
measured rather than modelled. Pure logic, no I/O.

The replication writer reports, per read datacenter, how many sentinels were seen and the
newest ones' visibilities (`VisibilitySource.visibility_progress`). Read once per health
evaluation, that gives every sentinel seen since the last reading its own visibility (the
writer keeps the newest 256, far more than complete between two evaluations).

A window holds a sorted array of its visibilities, so a quantile is a lookup, and expires
them a slice (1 % of the window) at a time. Both hold unboxed doubles: 16 bytes a sentinel,
0.6 MB per read datacenter for an hour of sentinels every 100 ms.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Progress = tuple[int, Sequence[float]]
"""(sentinels seen so far, the newest ones' visibilities in seconds, oldest first)."""
SLICES = 100
"""A window expires its samples in this many steps."""

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
"""The visibility quantiles /freshness shows beside the configured confidences."""
STALE_ADVICE = "read from the write datacenter"
LOCAL_ADVICE = "read here after waiting wait_seconds"


@runtime_checkable
class VisibilitySource(Protocol):
    """What the freshness guidance needs of the replication writer (through the service)."""

    source: str
    """The write datacenter."""

    def lag(self, dc: str) -> float | None:
        """The datacenter's replication lag now, as `cqrs_replication_lag_seconds` reads."""
        ...

    def visibility_progress(self) -> Mapping[str, Progress]:
        """Per read datacenter: sentinels seen, the newest ones' visibilities."""
        ...


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile of sorted samples (there must be some)."""
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


class VisibilityWindow:
    """One read datacenter's sentinel visibilities over the last `window` seconds.

    Samples are kept in slices of `window / SLICES` seconds on a fixed grid; a slice leaves
    once its start is out of the window, so the window covers between 99 % and all of
    `window`.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.slice_seconds = window / SLICES
        self._slices: deque[tuple[float, array[float]]] = deque()
        self._ordered: array[float] = array("d")
        self._seen: int | None = None

    def update(self, progress: Progress, now: float) -> None:
        """Take the sentinels seen since the last update."""
        count, recent = progress
        seen, self._seen = self._seen, count
        self._expire(now)
        if seen is None or count <= seen:
            return  # the first reading (or a restarted count) is the baseline
        new = [max(0.0, value) for value in recent[-(count - seen) :]]
        if not new:
            return
        start = now - now % self.slice_seconds
        if not self._slices or self._slices[-1][0] != start:
            self._slices.append((start, array("d")))
        self._slices[-1][1].extend(new)
        for value in new:
            bisect.insort(self._ordered, value)

    def _expire(self, now: float) -> None:
        while self._slices and self._slices[0][0] <= now - self.window:
            _, values = self._slices.popleft()
            for value in values:
                del self._ordered[bisect.bisect_left(self._ordered, value)]

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._ordered)

    def quantile(self, q: float, now: float) -> float | None:
        self._expire(now)
        return nearest_rank(self._ordered, q) if self._ordered else None

    def maximum(self, now: float) -> float | None:
        return self.quantile(1.0, now)


def confidence_label(q: float) -> str:
    """0.999 -> `0.999`: how a confidence is written in labels and JSON keys."""
    return f"{q:g}"


@dataclass(frozen=True)
class Advice:
    """One read datacenter's guidance at one moment."""

    target: str
    samples: int
    quantiles: dict[str, float | None]
    waits: dict[str, float | None]
    lag: float | None
    stale: bool
    sufficient: bool

    @property
    def advice(self) -> str:
        return LOCAL_ADVICE if self.sufficient and not self.stale else STALE_ADVICE

    def to_json(self, window: float, threshold: float) -> dict[str, object]:
        return {
            "samples": self.samples,
            "window_seconds": window,
            "quantiles_seconds": self.quantiles,
            "wait_seconds": self.waits,
            "lag_seconds": self.lag,
            "threshold_seconds": threshold,
            "stale": self.stale,
            "advice": self.advice,
        }


class Freshness:
    """The visibility windows of every read datacenter a source reports."""

    def __init__(
        self,
        window: float,
        confidences: Sequence[float],
        threshold: float,
        min_samples: int,
    ) -> None:
        self.window = window
        self.confidences = tuple(confidences)
        self.threshold = threshold
        self.min_samples = min_samples
        self.windows: dict[str, VisibilityWindow] = {}

    def update(self, progress: Mapping[str, Progress], now: float) -> None:
        for dc, each in progress.items():
            window = self.windows.setdefault(dc, VisibilityWindow(self.window))
            window.update(each, now)

    def advice(self, dc: str, lag: float | None, now: float) -> Advice:
        window = self.windows.setdefault(dc, VisibilityWindow(self.window))
        samples = window.count(now)
        sufficient = samples >= self.min_samples
        quantiles = {confidence_label(q): window.quantile(q, now) for q in QUANTILES}
        quantiles["max"] = window.maximum(now)
        waits = {
            confidence_label(q): window.quantile(q, now) if sufficient else None
            for q in self.confidences
        }
        # Unknown lag is not fresh: nothing says a write made now would arrive.
        stale = lag is None or lag > self.threshold
        return Advice(dc, samples, quantiles, waits, lag, stale, sufficient)
