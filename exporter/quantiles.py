"""Latency quantiles an operator can trust.

Two views of the same timings:

- `SlidingHistogram`: an in-process HDR histogram over a sliding window made of time
  slices, for exact-enough p50/p99/p99.9/max (within 0.1 % of the recorded values).
- `BucketHistogram`: cumulative Prometheus buckets, laid out by `latency_buckets` with
  boundaries exactly on the thresholds and dense (about 1.26x) spacing around them, so
  `histogram_quantile` in dashboards and alerts lands within one narrow bucket of the
  in-process figure where it matters.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram
from prometheus_client.utils import floatToGoString as _untyped_go_string

_go_string: Callable[[float], str] = _untyped_go_string
"""How the exposition formats a bucket bound (`le`), typed."""

MICROS_PER_SECOND = 1_000_000
SIGNIFICANT_FIGURES = 3
"""HDR resolution: values are kept to 3 significant digits (better than 0.1 %)."""
HIGHEST_SECONDS = 3600.0
"""The default ceiling of recorded values."""

# Spacing of the dense buckets around each threshold: three steps per doubling, so a
# threshold and its double (50 ms and 100 ms) both fall exactly on a boundary.
DENSE_RATIO = 2 ** (1 / 3)
DENSE_STEPS = 6
"""Dense boundaries reach DENSE_STEPS steps (a factor of 4) either side of each anchor."""
TIMEOUT_BUCKET = 0.99
"""The last boundary below `highest`, as a fraction of it."""
MERGE_RATIO = 1.1
"""Boundaries closer than this ratio to an anchor (or to each other) are dropped."""


@dataclass(frozen=True, slots=True)
class QuantileSnapshot:
    """Quantiles of the samples in the window, in seconds (None when there are none)."""

    count: int
    sum: float = 0.0
    """The samples' total in seconds (of the recorded, clamped values, to the microsecond)."""
    p50: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None

    @classmethod
    def empty(cls) -> QuantileSnapshot:
        return cls(0)


def exact_quantile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of raw samples: the reference the HDR figures are held to."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _to_micros(seconds: float, highest: float) -> int:
    clamped = min(max(seconds, 0.0), highest)
    return round(clamped * MICROS_PER_SECOND)


def _new_hdr(highest: float) -> HdrHistogram:
    return HdrHistogram(1, max(2, round(highest * MICROS_PER_SECOND)), SIGNIFICANT_FIGURES)


def _zeroed(histogram: HdrHistogram) -> HdrHistogram:
    """`histogram` emptied in place, at C speed (HdrHistogram.reset walks its counts in Python)."""
    counts = histogram.counts
    ctypes.memset(ctypes.addressof(counts), 0, ctypes.sizeof(counts))
    histogram.total_count, histogram.min_value, histogram.max_value = 0, sys.maxsize, 0
    return histogram


def _counts_upto(histogram: HdrHistogram, last_index: int) -> list[int]:
    """The counts array up to `last_index`, read at C speed where the layout allows."""
    counts = histogram.counts
    if ctypes.sizeof(counts._type_) == 8:
        view = memoryview(counts).cast("B").cast("Q")
        return view[: last_index + 1].tolist()
    return [counts[i] for i in range(last_index + 1)]


@dataclass
class _Slice:
    start: float
    histogram: HdrHistogram
    max_micros: int = 0
    sum_micros: int = 0
    """The recorded samples' exact total: the HDR histogram would have to walk every bucket."""


class SlidingHistogram:
    """An HDR histogram over the last `window` seconds, expiring one slice at a time.

    The window holds `slices` slices of `window / slices` seconds each, the newest one
    still filling, so a snapshot covers between `window - window / slices` and `window`
    seconds of samples. Samples above `highest` are recorded as `highest`. Every method
    runs in microseconds to a few milliseconds and does no I/O; nothing here is
    thread-safe (it lives on the event loop).

    An expired slice's histogram is emptied and reused by the next slice, so a window
    allocates at most `slices + 1` histograms in its life rather than one of tens of
    kilobytes per slice.
    """

    def __init__(
        self,
        window: float,
        slices: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        highest: float = HIGHEST_SECONDS,
    ) -> None:
        if window <= 0 or slices < 1 or highest <= 0:
            raise ValueError("window and highest must be positive and slices at least 1")
        self.window = window
        self.slices = slices
        self.slice_seconds = window / slices
        self.highest = highest
        self._clock = clock
        self._slices: deque[_Slice] = deque()
        self._spare: list[HdrHistogram] = []
        """Histograms of expired slices, emptied when a new slice takes one."""
        self._origin: float | None = None
        self._merged: HdrHistogram | None = None

    def _current(self, now: float) -> _Slice:
        if self._origin is None:
            self._origin = now
        self._expire(now)
        if self._slices and now < self._slices[-1].start + self.slice_seconds:
            return self._slices[-1]
        # Slices start on a fixed grid, so expiry is the same whenever samples arrive.
        start = now - ((now - self._origin) % self.slice_seconds)
        histogram = _zeroed(self._spare.pop()) if self._spare else _new_hdr(self.highest)
        current = _Slice(start, histogram)
        self._slices.append(current)
        return current

    def _expire(self, now: float) -> None:
        # A slice stays while its start is inside the window: at most `slices` of them.
        oldest_start = now - self.window
        while self._slices and self._slices[0].start <= oldest_start:
            expired = self._slices.popleft()
            if len(self._spare) < self.slices:
                self._spare.append(expired.histogram)

    def record(self, seconds: float, count: int = 1, *, now: float | None = None) -> None:
        """Add `count` samples of `seconds` (clamped to 0..highest)."""
        if count <= 0:
            return
        current = self._current(self._clock() if now is None else now)
        micros = _to_micros(seconds, self.highest)
        current.histogram.record_value(micros, count)
        current.max_micros = max(current.max_micros, micros)
        current.sum_micros += micros * count

    def _scratch(self) -> HdrHistogram:
        """The merge target, reused and zeroed in place (allocating one costs more)."""
        if self._merged is None:
            self._merged = _new_hdr(self.highest)
            return self._merged
        return _zeroed(self._merged)

    def count(self, *, now: float | None = None) -> int:
        self._expire(self._clock() if now is None else now)
        return sum(s.histogram.get_total_count() for s in self._slices)

    def snapshot(self, *, now: float | None = None) -> QuantileSnapshot:
        """p50, p99, p99.9 and max of the window's samples."""
        self._expire(self._clock() if now is None else now)
        live = [s for s in self._slices if s.histogram.get_total_count()]
        if not live:
            return QuantileSnapshot.empty()
        merged = live[0].histogram
        if len(live) > 1:
            merged = self._scratch()
            for part in live:
                merged.add(part.histogram)
        top = max(s.max_micros for s in live)
        cumulative = list(
            itertools.accumulate(_counts_upto(merged, merged._counts_index_for(top)))
        )
        total = cumulative[-1]

        def at(q: float) -> float:
            rank = max(1, math.ceil(q * total))
            index = bisect.bisect_left(cumulative, rank)
            value: int = merged.get_highest_equivalent_value(
                merged.get_value_from_index(index)
            )
            # The bucket's top can exceed the largest sample; never report above it.
            return min(value, top) / MICROS_PER_SECOND

        return QuantileSnapshot(
            count=total,
            sum=sum(s.sum_micros for s in live) / MICROS_PER_SECOND,
            p50=at(0.50),
            p99=at(0.99),
            p999=at(0.999),
            max=top / MICROS_PER_SECOND,
        )


def _round_significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def latency_buckets(
    anchors: Iterable[float],
    *,
    highest: float,
    lowest: float = 0.0002,
) -> tuple[float, ...]:
    """Prometheus bucket boundaries (seconds, ascending, without +Inf).

    Each anchor (a threshold) is a boundary exactly; boundaries step by 2^(1/3) ≈ 1.26
    up to a factor of 4 either side of each anchor, then double outwards to `lowest` and
    to `highest`, which is a boundary too (the timeout, where timed-out requests land),
    as is 0.99 x `highest`.
    """
    thresholds = sorted({float(a) for a in anchors if a > 0})
    if not thresholds or highest <= 0:
        raise ValueError("at least one positive anchor and a positive highest are required")
    # Timed-out requests are recorded at `highest`: a boundary just below it gives them a
    # bucket of their own, so a quantile that falls among them reads (almost) the timeout.
    exact = sorted(set(thresholds) | {float(highest), _round_significant(highest * TIMEOUT_BUCKET)})
    dense = {
        _round_significant(anchor * DENSE_RATIO**step)
        for anchor in thresholds
        for step in range(-DENSE_STEPS, DENSE_STEPS + 1)
    }
    coarse: list[float] = []
    value = min(dense) / 2
    while value >= lowest:
        coarse.append(_round_significant(value))
        value /= 2
    value = max(dense) * 2
    while value < highest:
        coarse.append(_round_significant(value))
        value *= 2

    def steps_from_anchor(candidate: float) -> float:
        return min(abs(math.log(candidate / a)) for a in exact)

    # The boundaries nearest an anchor win over any others close to them.
    kept = list(exact)
    for candidate in sorted(dense | set(coarse), key=steps_from_anchor):
        if candidate > highest:
            continue
        if all(max(candidate, k) / min(candidate, k) >= MERGE_RATIO for k in kept):
            kept.append(candidate)
    return tuple(sorted(kept))


class BucketHistogram:
    """Cumulative Prometheus buckets for one label set; observations are never forgotten."""

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bucket bounds must be strictly increasing")
        self.bounds = tuple(bounds)
        self._labels = (*(_go_string(b) for b in self.bounds), "+Inf")
        self._counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float, count: int = 1) -> None:
        # `le` is inclusive: a value equal to a bound belongs to that bound's bucket.
        self._counts[bisect.bisect_left(self.bounds, seconds)] += count
        self.sum += seconds * count
        self.count += count

    def buckets(self) -> list[tuple[str, float]]:
        """(`le`, cumulative count) pairs, ending with +Inf, as HistogramMetricFamily takes."""
        return list(zip(self._labels, itertools.accumulate(self._counts), strict=True))


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' `histogram_quantile` over (upper bound, cumulative count) pairs.

    The same linear interpolation inside the bucket that holds the rank, so checks and
    benchmarks can tell what dashboards will show without running Prometheus.
    """
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    observations = ordered[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    start, below = (0.0, 0.0) if index == 0 else ordered[index - 1]
    end, count = ordered[index]
    if index == 0 and end <= 0:
        return end
    return start + (end - start) * ((rank - below) / (count - below))
