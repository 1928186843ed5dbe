"""Lag accuracy of the three methods against injected sync delays of 0.5, 2 and 8 s.

- audit: the reference workload syncs asynchronously after the injected delay;
- checkpoint and sentinel: its projector takes each event once it is that old.

For each delay and path the benchmark records every lag the exporter reports over a number
of runs, and the workload's own record of each sync's WRITETIME gap ("truth": what there was
to measure, which on a loaded machine exceeds the injected delay).

Run: .venv/bin/python -m bench.read_model_lag [--readings N]
Writes bench/results/read_model_lag.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.common import save_results, testbed
from bench.read_model_common import probe, running_exporter
from exporter.stats import quantile
from testbed import TestbedCluster
from testbed.workload import Knobs, SyncMode, Workload
from testbed.workload import read_models as declared
from testbed.workload.faults import Delay

DELAYS = (0.5, 2.0, 8.0)
RATE = 10.0


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "p10": round(quantile(values, 0.1), 3),
        "p90": round(quantile(values, 0.9), 3),
        "n": len(values),
    }


async def collect(exporter: Any, names: list[str], readings: int,
                  timeout: float) -> dict[str, list[float]]:
    """The lag each probe reports after each of its next `readings` runs."""
    values: dict[str, list[float]] = {name: [] for name in names}
    seen = {name: exporter.runner.states[f"read_model:{name}"].runs for name in names}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(len(v) < readings for v in values.values()):
        await asyncio.sleep(0.05)
        for name in names:
            runs = exporter.runner.states[f"read_model:{name}"].runs
            if runs > seen[name] and len(values[name]) < readings:
                seen[name] = runs
                lag = probe(exporter, name).current_lag()
                if lag is not None:
                    values[name].append(lag)
    return values


def truth(workload: Workload, since: float) -> dict[str, float]:
    """What the workload itself recorded: each sync's WRITETIME gap."""
    lags = workload.stats.true_lags(since, "orders_by_customer")
    if not lags:
        return {}
    return {"truth_median": round(statistics.median(lags), 3),
            "truth_p90": round(quantile(lags, 0.9), 3), "truth_max": round(max(lags), 3)}


def reported(values: list[float], delay: float) -> dict[str, float]:
    if not values:
        return {}
    result = summary(values)
    result["error_of_median_percent"] = round(100 * (result["median"] - delay) / delay, 1)
    return result


async def measure(cluster: TestbedCluster, delay: float, mode: SyncMode,
                  models: Any, names: list[str], readings: int) -> tuple[dict[str, Any], Any]:
    """Run one workload with the delay, and an exporter with `models(keyspace)`."""
    workload = Workload(cluster.contact_points, cluster.write_datacenter,
                        keyspace=f"bench_lag_{mode.value.replace('-', '_')}_"
                                 f"{int(delay * 1000)}ms_{int(time.time()) % 100000}",
                        replication=dict.fromkeys(cluster.datacenters, 1),
                        knobs=Knobs(rate=RATE, mode=mode, delay=Delay.fixed(delay)))
    await workload.start(projector=mode is SyncMode.PROJECTION)
    try:
        async with running_exporter(cluster, models(workload.keyspace)) as exporter:
            await asyncio.sleep(delay + 8.0)  # past the first syncs, with rows to sample
            started = time.time()
            values = await collect(exporter, names, readings, timeout=240)
    finally:
        await workload.stop(drain=1.0)
    return values, truth(workload, started - 10)


def audit_models(keyspace: str) -> list[dict[str, Any]]:
    audit = declared.audit_orders_by_customer(
        keyspace, samples_per_run=40, budget=60, recent_window="30s", grace="30s",
        lag_window="2m")
    audit.update(interval="3s", timeout="2500ms")
    return [audit]


def projection_models(keyspace: str) -> list[dict[str, Any]]:
    sentinel = declared.sentinel_projection(keyspace, poll_interval="50ms")
    sentinel.update(interval="3s", timeout="2s")
    return [declared.checkpoint_projection(keyspace), sentinel]


async def one_delay(cluster: TestbedCluster, delay: float, readings: int) -> dict[str, Any]:
    result: dict[str, Any] = {"injected_seconds": delay}
    values, async_truth = await measure(cluster, delay, SyncMode.ASYNC, audit_models,
                                        ["orders_by_customer"], readings)
    result["audit"] = {**reported(values["orders_by_customer"], delay), **async_truth}
    values, projected_truth = await measure(cluster, delay, SyncMode.PROJECTION,
                                            projection_models,
                                            ["orders_projection", "orders_sentinel"], readings)
    result["checkpoint"] = {**reported(values["orders_projection"], delay), **projected_truth}
    result["sentinel"] = reported(values["orders_sentinel"], delay)
    return result


async def main_async(readings: int) -> dict[str, Any]:
    with testbed() as cluster:
        rows = [await one_delay(cluster, delay, readings) for delay in DELAYS]
    return {"rate_commands_per_second": RATE, "readings_per_delay": readings, "delays": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10)
    args = parser.parse_args()
    figures = asyncio.run(main_async(args.readings))
    print(f"{'injected':>9} {'method':>10} {'median':>8} {'p10':>7} {'p90':>7} {'err%':>6} "
          f"{'truth p50':>9} {'truth p90':>9}")
    for row in figures["delays"]:
        for method in ("audit", "checkpoint", "sentinel"):
            r = row.get(method) or {}
            if "median" in r:
                print(f"{row['injected_seconds']:>9} {method:>10} {r['median']:>8} "
                      f"{r['p10']:>7} {r['p90']:>7} {r['error_of_median_percent']:>6} "
                      f"{r.get('truth_median', '-')!s:>9} {r.get('truth_p90', '-')!s:>9}")
    print(f"written to {save_results('read_model_lag', figures)}")


if __name__ == "__main__":
    main()
