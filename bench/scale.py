"""200 read models and 20 declared queries on one exporter, three datacenters, the budget at
its default (50 requests a second per datacenter).

Two real `cqrs-exporter serve` processes run side by side on the testbed: the scale one
(200 read models, checkpoint, audit and sentinel in turn, on tables of their own, see
tests/scale_support.py; 20 declared queries at 0.5/s per datacenter each) and a reference at
defaults (no read model, no declared query). After a warm-up both are scraped once a second
for the measurement: schedule drift p99 (from `cqrs_probe_schedule_drift_seconds`), CPU and
RSS (from /proc, scale over reference as a ratio), `/metrics` size and scrape time, the
requests per datacenter (`cqrs_budget_requests_total`: the mean and the most in any ten
seconds, against the budget) and the read models' schedule stretch.

A scrape may be served a render up to 1 s old, so the counts are timed by the render's last
health evaluation (`cqrs_health_last_evaluation_timestamp_seconds`, at most 250 ms before
the render), not by the scrape: over ten seconds that is within 5 %, over one it would not
be, so no one-second figure is given. That no second holds more than the budget is the
token bucket's own guarantee (tests/unit/test_budget.py).

Run (it starts its own testbed unless one runs in CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.scale --warmup 60 --measure 120
Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import save_results, testbed
from bench.quiet import load, wait_for_quiet
from bench.served import Served, base_config, by_dc
from tests.scale_support import create_tables, scale_config

BUDGET = 50.0


def drift_buckets(samples: dict[str, list[tuple[dict[str, str], float]]]) -> dict[float, float]:
    return {float(labels["le"]): value
            for labels, value in samples.get("cqrs_probe_schedule_drift_seconds_bucket", [])}


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated inside its bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / max(buckets[bound] - below, 1e-9)
            return lower + (bound - lower) * share
        lower, below = bound, buckets[bound]
    return lower


def measure(scale: Served, reference: Served, seconds: float) -> dict[str, Any]:
    cpu0 = {s.name: s.cpu_seconds() for s in (scale, reference)}
    wall0 = time.monotonic()
    scrapes: list[tuple[float, dict[str, float]]] = []
    sizes, times, rss, loads = [], [], {scale.name: [], reference.name: []}, []
    drift0: dict[float, float] = {}
    last: dict[str, list[tuple[dict[str, str], float]]] = {}
    while (now := time.monotonic()) - wall0 < seconds:
        took, size, samples = scale.scrape()
        reference.scrape()
        if not drift0:
            drift0 = drift_buckets(samples)
        # The counts are stamped with the render's own last health evaluation (every 250 ms),
        # not the scrape's start: a scrape may be served a render up to 1 s old.
        (_, evaluated), = samples["cqrs_health_last_evaluation_timestamp_seconds"]
        scrapes.append((evaluated, by_dc(samples, "cqrs_budget_requests_total")))
        sizes.append(size)
        times.append(took)
        for s in (scale, reference):
            rss[s.name].append(s.rss_mb())
        loads.append(load())
        last = samples
        time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    wall = time.monotonic() - wall0
    cpu = {name: (s.cpu_seconds() - cpu0[name]) / wall
           for name, s in ((scale.name, scale), (reference.name, reference))}
    drift = {le: v - drift0.get(le, 0.0) for le, v in drift_buckets(last).items()}
    rates: dict[str, dict[str, float]] = {}
    for dc in scrapes[0][1]:
        ten = [
            (scrapes[i + 10][1][dc] - scrapes[i][1][dc]) / (scrapes[i + 10][0] - scrapes[i][0])
            for i in range(len(scrapes) - 10)
        ]
        total = (scrapes[-1][1][dc] - scrapes[0][1][dc]) / (scrapes[-1][0] - scrapes[0][0])
        rates[dc] = {"mean": round(total, 2),
                     "max_10s": round(max(ten), 2) if ten else None,
                     "max_10s_over_budget": round(max(ten) / BUDGET, 3) if ten else None}
    stretch = {labels["cassandra_datacenter"]: round(value, 2) for labels, value
               in last.get("cqrs_budget_schedule_stretch_factor", [])}
    models = [value for _, value in last.get("cqrs_read_model_schedule_stretch_factor", [])]
    p99 = quantile_from_buckets(drift, 0.99)
    return {
        "seconds": round(wall, 1),
        "load_1m": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
        "drift_p99_ms": None if p99 is None else round(p99 * 1000, 1),
        "drift_runs": drift.get(float("inf")),
        "cpu_core_share": {k: round(v, 4) for k, v in cpu.items()},
        "cpu_ratio_scale_over_reference": round(cpu[scale.name] / cpu[reference.name], 2),
        "rss_mb": {k: round(max(v), 1) for k, v in rss.items()},
        "metrics_bytes": max(sizes),
        "metrics_series": int(next(iter(last.get("cqrs_exporter_series", [({}, 0)])))[1]),
        "series_dropped": int(next(iter(last.get("cqrs_exporter_series_dropped", [({}, 0)])))[1]),
        "scrape_ms": {"p50": round(sorted(times)[len(times) // 2] * 1000, 1),
                      "max": round(max(times) * 1000, 1)},
        "requests_per_second": rates,
        "budget_per_datacenter": BUDGET,
        "stretch_by_datacenter": stretch,
        "read_models_stretched": sum(1 for v in models if v > 1.0),
        "read_models": len(models),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet = wait_for_quiet(timeout=args.load_deadline, required=False)
    print(f"load before the run: {quiet:.2f}", flush=True)
    with testbed() as cluster, tempfile.TemporaryDirectory() as directory:
        datacenters = [cluster.write_datacenter, *cluster.read_datacenters]
        base = base_config(cluster)
        asyncio.run(create_tables(base, datacenters))
        config = scale_config(base, datacenters, args.read_models, args.queries, 0.5)
        reference_config = {**base, "monitoring": {**base["monitoring"], "writer_id": "ref"}}
        scale = Served("scale", config, Path(directory))
        reference = Served("reference", reference_config, Path(directory))
        try:
            deadline = time.monotonic() + 120
            while not (scale.ready() and reference.ready()):
                for s in (scale, reference):
                    if s.process.poll() is not None:
                        raise SystemExit(f"{s.name} exited:\n{s.log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise SystemExit("the exporters were not ready within 120 s")
                time.sleep(1)
            print(f"ready; warming up {args.warmup:g} s (load {load():.2f})", flush=True)
            time.sleep(args.warmup)
            print(f"measuring {args.measure:g} s (load {load():.2f})", flush=True)
            figures = measure(scale, reference, args.measure)
            figures["stretch_log"] = [
                line for line in scale.log_path.read_text().splitlines()
                if "request budget" in line
            ][:3]
        finally:
            scale.stop()
            reference.stop()
    figures.update(read_models_configured=args.read_models, declared_queries=args.queries,
                   datacenters=len(datacenters), load_before=round(quiet, 2))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--read-models", type=int, default=200)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--measure", type=float, default=120.0)
    parser.add_argument("--load-deadline", type=float, default=600.0,
                        help="seconds to wait for a 1-minute load under 2 before measuring")
    args = parser.parse_args()
    figures = run(args)
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"wrote {save_results('scale', figures)}", file=sys.stderr)


if __name__ == "__main__":
    main()
