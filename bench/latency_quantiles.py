"""Quantile error against exact values (1k, 10k, 100k samples) and the cost of one sample.

Run: .venv/bin/python -m bench.latency_quantiles
Writes bench/results/latency_quantiles.json.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.common import save_results
from exporter.quantiles import (
    BucketHistogram,
    SlidingHistogram,
    bucket_quantile,
    exact_quantile,
    latency_buckets,
)
from probes.latency.series import LatencySeries, Operation, SeriesKey

SIZES = (1_000, 10_000, 100_000)
BOUNDS = latency_buckets((0.05, 0.1), highest=1.0)


def loopback(rng: random.Random, n: int) -> list[float]:
    """Healthy loopback reads: about 1 ms, a long log-normal tail."""
    return [0.001 * math.exp(rng.gauss(0, 0.8)) for _ in range(n)]


def near_thresholds(rng: random.Random, n: int) -> list[float]:
    """A slow datacenter: p99 between 50 ms and 100 ms, where the alerts decide."""
    return [0.025 * math.exp(rng.gauss(0, 0.4)) for _ in range(n)]


def with_timeouts(rng: random.Random, n: int) -> list[float]:
    """A datacenter stalling 2 % of the time: timeouts recorded at the 1 s timeout."""
    return [1.0 if rng.random() < 0.02 else 0.002 * math.exp(rng.gauss(0, 0.6)) for _ in range(n)]


DISTRIBUTIONS: dict[str, Callable[[random.Random, int], list[float]]] = {
    "loopback": loopback,
    "near_thresholds": near_thresholds,
    "with_timeouts": with_timeouts,
}


def relative_error(got: float, exact: float) -> float:
    return abs(got - exact) / exact


def accuracy() -> list[dict[str, Any]]:
    rows = []
    for name, make in DISTRIBUTIONS.items():
        for n in SIZES:
            samples = make(random.Random(n), n)
            window = SlidingHistogram(300, 5, clock=lambda: 0.0)
            buckets = BucketHistogram(BOUNDS)
            for value in samples:
                window.record(value)
                buckets.observe(value)
            snapshot = window.snapshot()
            pairs = [(math.inf if le == "+Inf" else float(le), c) for le, c in buckets.buckets()]
            row: dict[str, Any] = {"distribution": name, "samples": n}
            for label, q, got in (
                ("p50", 0.5, snapshot.p50),
                ("p99", 0.99, snapshot.p99),
                ("p999", 0.999, snapshot.p999),
            ):
                exact = exact_quantile(samples, q)
                assert got is not None
                row[f"{label}_exact_ms"] = round(exact * 1000, 4)
                row[f"{label}_hdr_rel_error"] = relative_error(got, exact)
                row[f"{label}_buckets_rel_error"] = relative_error(bucket_quantile(q, pairs), exact)
            rows.append(row)
    return rows


def per_call(action: Callable[[], None], repeat: int) -> float:
    """Median seconds per call over five rounds."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            action()
        rounds.append((time.perf_counter() - started) / repeat)
    return statistics.median(rounds)


def costs() -> dict[str, float]:
    rng = random.Random(1)
    values = loopback(rng, 10_000)
    cycle = iter(values * 1000)
    window = SlidingHistogram(300, 5)
    buckets = BucketHistogram(BOUNDS)
    series = LatencySeries.create(
        SeriesKey(Operation.QUERY, "eu-west", "LOCAL_ONE"),
        timeout=1.0,
        window=300,
        slices=5,
        bounds=BOUNDS,
        clock=time.monotonic,
    )
    result = {
        "hdr_record_us": per_call(lambda: window.record(next(cycle)), 20_000) * 1e6,
        "bucket_observe_us": per_call(lambda: buckets.observe(next(cycle)), 20_000) * 1e6,
        "series_record_success_us": per_call(
            lambda: series.record_success(next(cycle)), 20_000
        )
        * 1e6,
    }
    full = SlidingHistogram(300, 5, clock=lambda: 0.0)
    for index, value in enumerate(with_timeouts(rng, 100_000)):
        full.record(value, now=index * 300 / 100_000)
    result["snapshot_5_slices_100k_ms"] = per_call(lambda: full.snapshot(now=299.0), 20) * 1e3
    return result


def main() -> None:
    results = {"accuracy": accuracy(), "cost": costs(), "bucket_bounds_s": list(BOUNDS)}
    print(f"{'distribution':<16}{'n':>8}  {'p99 exact ms':>12}  {'HDR err':>9}  {'buckets err':>11}"
          f"  {'p99.9 HDR err':>13}")
    for row in results["accuracy"]:
        print(
            f"{row['distribution']:<16}{row['samples']:>8}  {row['p99_exact_ms']:>12.3f}  "
            f"{row['p99_hdr_rel_error']:>9.4%}  {row['p99_buckets_rel_error']:>11.2%}  "
            f"{row['p999_hdr_rel_error']:>13.4%}"
        )
    for name, value in results["cost"].items():
        print(f"{name}: {value:.2f}")
    written = save_results("latency_quantiles", results)
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
