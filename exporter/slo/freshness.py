"""Read-your-writes guidance from each read datacenter's recent sentinel visibilities.

The wait at confidence p is the p-quantile (nearest rank) of the visibilities seen in the
window: a read sent that long after a command's acknowledgement would have seen that share
of the sentinels. That is probabilistically bounded staleness (Bailis et al., VLDB 2012),
measured rather than modelled. Pure logic, no I/O.

The replication writer reports, per read datacenter, how many sentinels were seen, the
sum of their visibilities and the last one's (`VisibilitySource.visibility_progress`).
Read once per health evaluation, that gives each sentinel's visibility exactly when one
completes per evaluation (the usual case: one sentinel a second); when several complete
between two readings, the last is exact and the others get the mean of the rest.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Progress = tuple[int, float, float | None]
"""(sentinels seen so far, the sum of their visibilities, the last one's), in seconds."""

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
        """Per read datacenter: sentinels seen, their visibilities' sum, the last one's."""
        ...


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile of sorted samples (there must be some)."""
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


class VisibilityWindow:
    """One read datacenter's sentinel visibilities over the last `window` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()
        self._seen: tuple[int, float] | None = None
        self._ordered: list[float] | None = None

    def update(self, progress: Progress, now: float) -> None:
        """Take the sentinels seen since the last update (see the module's docstring)."""
        count, total, last = progress
        seen = self._seen
        self._seen = (count, total)
        self._expire(now)
        if seen is None or count < seen[0] or last is None:
            return  # the first reading (or a restarted count) is the baseline
        new = count - seen[0]
        if new <= 0:
            return
        if new > 1:
            rest = max(0.0, (total - seen[1] - last) / (new - 1))
            self._samples.extend((now, rest) for _ in range(new - 1))
        self._samples.append((now, max(0.0, last)))
        self._ordered = None

    def _expire(self, now: float) -> None:
        while self._samples and self._samples[0][0] <= now - self.window:
            self._samples.popleft()
            self._ordered = None

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._samples)

    def quantile(self, q: float, now: float) -> float | None:
        self._expire(now)
        if not self._samples:
            return None
        if self._ordered is None:
            self._ordered = sorted(value for _, value in self._samples)
        return nearest_rank(self._ordered, q)

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
