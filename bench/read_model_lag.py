"""Lag accuracy of the three methods against injected sync delays of 0.5, 2 and 8 s.

- audit: the reference workload syncs asynchronously after the injected delay;
- checkpoint and sentinel: its projector takes each event once it is that old.

For each delay the benchmark records every lag the exporter reports over a number of runs,
and the workload's own record of each sync (what there was to measure).

Run: .venv/bin/python -m bench.read_model_lag [--readings N]
Writes bench/results/read_model_lag.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.read_model_common import probe, running_exporter, save, testbed
from exporter.stats import quantile
from testbed import TestbedCluster
from testbed import workload_read_models as declared
from testbed.workload import Knobs, SyncMode, Workload
from testbed.workload_faults import Delay

DELAYS = (0.5, 2.0, 8.0)
RATE = 20.0


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


async def one_delay(cluster: TestbedCluster, delay: float, readings: int) -> dict[str, Any]:
    tag = f"{int(delay * 1000)}ms_{int(time.time()) % 100000}"
    replication = dict.fromkeys(cluster.datacenters, 1)
    async_side = Workload(cluster.contact_points, cluster.write_datacenter,
                          keyspace=f"bench_lag_async_{tag}", replication=replication,
                          knobs=Knobs(rate=RATE, mode=SyncMode.ASYNC, delay=Delay.fixed(delay)))
    projected = Workload(cluster.contact_points, cluster.write_datacenter,
                         keyspace=f"bench_lag_proj_{tag}", replication=replication,
                         knobs=Knobs(rate=RATE, mode=SyncMode.PROJECTION,
                                     delay=Delay.fixed(delay)))
    await async_side.start(projector=False)
    await projected.start()
    audit = declared.audit_orders_by_customer(
        async_side.keyspace, samples_per_run=40, budget=60, recent_window="30s", grace="30s",
        lag_window="2m")
    audit.update(interval="3s", timeout="2500ms")
    sentinel = declared.sentinel_projection(projected.keyspace, poll_interval="50ms")
    sentinel.update(interval="3s", timeout="2s")
    models = [audit, declared.checkpoint_projection(projected.keyspace), sentinel]
    try:
        async with running_exporter(cluster, models) as exporter:
            await asyncio.sleep(delay + 8.0)  # past the first syncs, with rows to sample
            started = time.time()
            values = await collect(exporter, ["orders_by_customer", "orders_projection",
                                              "orders_sentinel"], readings, timeout=180)
        truth = async_side.stats.true_lags(started, "orders_by_customer")
    finally:
        await async_side.stop(drain=1.0)
        await projected.stop(drain=1.0)
    result: dict[str, Any] = {"injected_seconds": delay}
    for name, method in (("orders_by_customer", "audit"), ("orders_projection", "checkpoint"),
                         ("orders_sentinel", "sentinel")):
        if values[name]:
            reported = summary(values[name])
            reported["error_of_median_seconds"] = round(reported["median"] - delay, 3)
            reported["error_of_median_percent"] = round(100 * (reported["median"] - delay)
                                                        / delay, 1)
            result[method] = reported
    if truth:
        result["audit_truth_p90"] = round(quantile(truth, 0.9), 3)
        result["audit_truth_median"] = round(statistics.median(truth), 3)
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
    print(f"{'injected':>9} {'method':>10} {'median':>8} {'p10':>7} {'p90':>7} {'err%':>6}")
    for row in figures["delays"]:
        for method in ("audit", "checkpoint", "sentinel"):
            if method in row:
                r = row[method]
                print(f"{row['injected_seconds']:>9} {method:>10} {r['median']:>8} "
                      f"{r['p10']:>7} {r['p90']:>7} {r['error_of_median_percent']:>6}")
        if "audit_truth_p90" in row:
            print(f"{'':>9} {'truth p90':>10} {row['audit_truth_p90']:>8}")
    print(f"written to {save('read_model_lag', figures)}")


if __name__ == "__main__":
    main()
