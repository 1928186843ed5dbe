"""Replication lag against an injected one-way delay into eu-west, beside Cassandra's own view.

For each delay (Toxiproxy latency on replication into eu-west, its clients untouched) it
takes the estimated lag of the next `--readings` sentinels seen in eu-west (the writer probe
at its defaults: a sentinel a second, 50 ms polls) and, as the reference measured in the
same run, how much longer a write at consistency ALL takes than without the delay (the mutation
reaches eu-west that much later; the acknowledgement comes back undelayed). It reports the
median and p95 error of the readings against the injected delay, and the ratio of the
median reading to the reference.

Run (with a testbed up, e.g. `python -m testbed up --nodes-per-dc 2`, same CQRS_TESTBED_NET /
CQRS_TESTBED_DIR; or none, and it starts and stops its own):
    .venv/bin/python -m bench.replication_delay --delays 50,150,300,600,1200 --readings 10
Writes bench/results/replication_delay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from bench.common import ensure_schema_retrying, quiet_logging, save_results, testbed
from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.scheduler import ProbeRunner
from probes.base import ProbeContext
from probes.replication.writer import WriterProbe
from testbed import TestbedCluster

TARGET = "eu-west"
SETTLE_READINGS = 2
REFERENCE_WRITES = 15


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]


async def readings(probe: WriterProbe, count: int) -> list[float]:
    state = probe.tracker.targets[TARGET]
    seen = state.visibility.count
    found: list[float] = []
    deadline = time.monotonic() + 30.0 + 3.0 * count
    while len(found) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} sentinels seen in {TARGET}")
        if state.visibility.count > seen and state.estimate is not None:
            seen = state.visibility.count
            found.append(state.estimate)
        await asyncio.sleep(0.005)
    return found


async def write_at_all(connection: CassandraConnection, table: str, dc: str) -> float:
    """Seconds of one write at ALL, coordinated in the write datacenter."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    statement = SimpleStatement(
        f"INSERT INTO {table} (id, at) VALUES (%s, toTimestamp(now()))",
        consistency_level=ConsistencyLevel.ALL,
    )
    began = time.perf_counter()
    await connection.execute(statement, (uuid.uuid4(),), datacenter=dc, write=True)
    return time.perf_counter() - began


async def reference(connection: CassandraConnection, table: str, dc: str) -> float:
    times = [await write_at_all(connection, table, dc) for _ in range(REFERENCE_WRITES)]
    return statistics.median(times)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with testbed() as cluster:
        return await run(cluster, args)


async def run(cluster: TestbedCluster, args: argparse.Namespace) -> dict[str, Any]:
    config = parse_config({
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {"write": cluster.write_datacenter, "read": list(cluster.read_datacenters)},
        "monitoring": {
            "create_schema": True,
            "replication_factor": cluster.replication_factor,
            "writer_id": "bench-delay",
        },
        "probes": {"replication": {"sentinel_timeout": "60s"}},
    })
    connection = CassandraConnection(config)
    await connection.connect()
    await ensure_schema_retrying(config, connection)
    table = f"{config.monitoring.keyspace}.bench_delay"
    write_dc = cluster.write_datacenter
    await connection.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (id uuid PRIMARY KEY, at timestamp)",
        datacenter=write_dc, write=True, timeout=60.0,
    )
    probe = WriterProbe(ProbeContext(config, connection), config.probes.replication)
    runner = ProbeRunner([probe])
    await runner.start()
    rows: list[dict[str, Any]] = []
    try:
        await readings(probe, SETTLE_READINGS)
        for delay_ms in args.delays:
            baseline = await reference(connection, table, write_dc)
            await asyncio.to_thread(cluster.delay, TARGET, delay_ms)
            try:
                await readings(probe, SETTLE_READINGS)  # written before the delay began
                values = await readings(probe, args.readings)
                delayed = await reference(connection, table, write_dc)
            finally:
                await asyncio.to_thread(cluster.heal, TARGET)
            await readings(probe, SETTLE_READINGS)
            delay = delay_ms / 1000
            errors = [v - delay for v in values]
            seen_by_cassandra = delayed - baseline
            row = {
                "delay_ms": delay_ms,
                "readings_s": values,
                "median_s": statistics.median(values),
                "median_error_ms": statistics.median(errors) * 1000,
                "p95_abs_error_ms": p95([abs(e) for e in errors]) * 1000,
                "reference_ms": seen_by_cassandra * 1000,
                "median_vs_reference": statistics.median(values) / seen_by_cassandra
                if seen_by_cassandra > 0 else None,
                "load_average": os.getloadavg()[0],
            }
            rows.append(row)
            print(
                f"delay {delay_ms:>5} ms: median {row['median_s'] * 1000:7.1f} ms "
                f"(error {row['median_error_ms']:+6.1f} ms, p95 |error| "
                f"{row['p95_abs_error_ms']:5.1f} ms); write at ALL +{row['reference_ms']:6.1f} ms; "
                f"ratio {row['median_vs_reference'] or float('nan'):.3f}; "
                f"load {row['load_average']:.2f}",
                flush=True,
            )
    finally:
        await runner.stop()
        await connection.execute(
            f"DROP TABLE IF EXISTS {table}", datacenter=write_dc, write=True, timeout=60.0
        )
        await connection.close()
    return {
        "settings": {
            "nodes_per_dc": cluster.nodes_per_dc,
            "interval_s": probe.settings.interval,
            "poll_interval_s": probe.settings.poll_interval,
            "readings": args.readings,
        },
        "rows": rows,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--delays", type=lambda s: [int(x) for x in s.split(",")],
        default=[50, 150, 300, 600, 1200],
    )
    parser.add_argument("--readings", type=int, default=10)
    return parser.parse_args()


if __name__ == "__main__":
    quiet_logging()
    arguments = parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    path = save_results("replication_delay", asyncio.run(main(arguments)))
    print(f"wrote {path}")
