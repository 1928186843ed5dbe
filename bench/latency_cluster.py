"""Client-observed vs server-side p99 on the testbed, and the probe's request rate per stream.

Runs the latency probe (and the server-side view) against a running testbed for a while at
each requested rate, then reports per stream the achieved request rate, the in-process
quantiles, failures and missed slots, Cassandra's own coordinator p99 for the same table,
and the event-loop lag.

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.latency_cluster --seconds 60 --rates 10,50,200
Writes bench/results/latency_cluster.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from bench.common import save_results
from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.event_loop import EventLoopMonitor
from exporter.schema import ensure_schema
from probes.base import ProbeContext
from probes.latency.probe import LatencyProbe
from probes.latency.server import ServerLatencyProbe
from testbed.cluster import TestbedCluster


def config_for(cluster: TestbedCluster, rate: float) -> Any:
    return parse_config(
        {
            "cluster": {"contact_points": cluster.contact_points, "connect_timeout": "20s"},
            "datacenters": {
                "write": cluster.write_datacenter,
                "read": list(cluster.read_datacenters),
            },
            "monitoring": {"create_schema": True, "replication_factor": 1},
            "probes": {
                "latency": {"rate": rate, "server": {"interval": "5s", "timeout": "4s"}},
            },
        }
    )


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


async def measure(cluster: TestbedCluster, rate: float, seconds: float) -> dict[str, Any]:
    config = config_for(cluster, rate)
    connection = CassandraConnection(config)
    await connection.connect_until_established()
    for attempt in range(5):
        try:
            await ensure_schema(config, connection)
            break
        except Exception:  # a loaded testbed drops the first requests now and then
            if attempt == 4:
                raise
            await asyncio.sleep(2)
    context = ProbeContext(config, connection)
    latency = LatencyProbe(context, config.probes.latency)
    server = ServerLatencyProbe(context, config.probes.latency.server)
    monitor = EventLoopMonitor()
    monitor.start()
    await latency.start()
    try:
        # Let prepares and the first requests settle, then time a clean stretch.
        await asyncio.sleep(5)
        for series in latency.series:
            series.window = type(series.window)(
                series.window.window,
                series.window.slices,
                highest=series.window.highest,
            )
        before = {loop.series.key: (loop.slots, loop.issued) for loop in latency.loops}
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        after = {loop.series.key: (loop.slots, loop.issued) for loop in latency.loops}
        await server.run()
        lag = monitor.snapshot()
    finally:
        await latency.stop()
        await monitor.stop()
        await connection.close()

    server_p99 = {(e.operation, e.datacenter): e.p99_seconds for e in server.latencies}
    streams = []
    for loop in latency.loops:
        series = loop.series
        key = series.key
        snapshot = series.refresh()
        slots = after[key][0] - before[key][0]
        issued = after[key][1] - before[key][1]
        operation = "write" if key.operation.value == "command" else "read"
        streams.append(
            {
                "stream": key.describe,
                "configured_rate": rate,
                "achieved_slots_per_s": round(slots / elapsed, 2),
                "achieved_requests_per_s": round(issued / elapsed, 2),
                "samples": snapshot.count,
                "client_p50_ms": ms(snapshot.p50),
                "client_p99_ms": ms(snapshot.p99),
                "client_p999_ms": ms(snapshot.p999),
                "client_max_ms": ms(snapshot.max),
                "server_p99_ms": ms(server_p99.get((operation, key.datacenter))),
                "failures": {r.value: n for r, n in series.failures.items() if n},
                "missed_slots": series.missed,
                "lagged_samples": series.lagged_window.count(),
            }
        )
    return {
        "rate": rate,
        "seconds": round(elapsed, 1),
        "event_loop_lag_p99_ms": ms(lag.p99),
        "event_loop_lag_p999_ms": ms(lag.p999),
        "event_loop_lag_max_ms": ms(lag.max),
        "streams": streams,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", default="10,50,200", help="comma-separated requests/s")
    parser.add_argument("--dir", default=None, help="testbed folder (default: as the CLI)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    cluster = TestbedCluster.load(args.dir)
    runs = []
    for rate in (float(r) for r in args.rates.split(",")):
        result = asyncio.run(measure(cluster, rate, args.seconds))
        runs.append(result)
        print(
            f"rate {rate:g}/s for {result['seconds']} s: event-loop lag p99.9 "
            f"{result['event_loop_lag_p999_ms']} ms, max {result['event_loop_lag_max_ms']} ms"
        )
        print(
            f"  {'stream':<26}{'slots/s':>9}{'sent/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'server p99':>11}{'failed':>8}{'missed':>8}{'lagged':>8}"
        )
        for s in result["streams"]:
            print(
                f"  {s['stream']:<26}{s['achieved_slots_per_s']:>9}"
                f"{s['achieved_requests_per_s']:>9}"
                f"{s['client_p50_ms']!s:>9}{s['client_p99_ms']!s:>9}{s['server_p99_ms']!s:>11}"
                f"{sum(s['failures'].values()):>8}{s['missed_slots']:>8}{s['lagged_samples']:>8}"
            )
    written = save_results("latency_cluster", {"runs": runs})
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
