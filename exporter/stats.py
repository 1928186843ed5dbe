"""Small statistics: the Wilson score interval, a time-windowed failure count, a quantile."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.96
"""The two-sided 95 % normal quantile, rounded as usual (and as the alert rules use it)."""


@dataclass(frozen=True, slots=True)
class RatioEstimate:
    """A failure ratio with its confidence interval."""

    failures: int
    trials: int
    ratio: float
    lower: float
    upper: float


def wilson_interval(failures: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default).

    Unlike the normal approximation it stays inside [0, 1] and does not collapse to a
    single point when there are no failures: 0 failures in 200 trials gives [0, 1.9 %].
    """
    if trials <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    if not 0 <= failures <= trials:
        raise ValueError(f"failures ({failures}) must be between 0 and trials ({trials})")
    n = float(trials)
    p = failures / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    # Exact ends where rounding would otherwise leave a hair above 0 or below 1.
    lower = 0.0 if failures == 0 else max(0.0, centre - half)
    upper = 1.0 if failures == trials else min(1.0, centre + half)
    return lower, upper


def estimate(failures: int, trials: int, z: float = Z_95) -> RatioEstimate | None:
    """The point ratio and its Wilson interval, or None without trials."""
    if trials <= 0:
        return None
    lower, upper = wilson_interval(failures, trials, z)
    return RatioEstimate(failures, trials, failures / trials, lower, upper)


class WindowedCounts:
    """Trials and failures over a sliding time window, kept in fixed slices.

    The window moves one slice at a time, so what it covers is between
    `window - window/slices` and `window` seconds.
    """

    def __init__(self, window: float, slices: int) -> None:
        if window <= 0 or slices < 1:
            raise ValueError("a window needs a positive length and at least one slice")
        self._width = window / slices
        self._slices = slices
        # [slice index, trials, failures], oldest first.
        self._buckets: deque[list[int]] = deque()

    def _expire(self, now: float) -> int:
        index = math.floor(now / self._width)
        while self._buckets and self._buckets[0][0] <= index - self._slices:
            self._buckets.popleft()
        return index

    def add(self, now: float, trials: int = 1, failures: int = 0) -> None:
        index = self._expire(now)
        if self._buckets and self._buckets[-1][0] == index:
            self._buckets[-1][1] += trials
            self._buckets[-1][2] += failures
        else:
            self._buckets.append([index, trials, failures])

    def totals(self, now: float) -> tuple[int, int]:
        """(trials, failures) inside the window at `now`."""
        index = math.floor(now / self._width)
        trials = failures = 0
        for bucket_index, bucket_trials, bucket_failures in self._buckets:
            if bucket_index > index - self._slices:
                trials += bucket_trials
                failures += bucket_failures
        return trials, failures


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of a non-empty sequence (q=1 is the maximum)."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside 0..1")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
