"""The replication probes' load on the cluster, per datacenter, at default settings.

Counts every request the probes send, by datacenter and kind, on the client side, and checks
it against Cassandra's own counters for the sentinel table (`system_views`
coordinator/local read and write counts, read from each node before and after). Phases:

- writer: the sentinel probe and the backlog probe on the real scheduler, all healthy;
- writer, eu-west paused: what a stalled datacenter receives (one read in flight at most);
- regional: a regional exporter reading the heartbeat in eu-west (the writer keeps writing).

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.replication_load --seconds 60
Writes bench/results/replication_load.json; with `--interval 1s`, replication_load_every_1s.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

from bench.common import ensure_schema_retrying, quiet_logging, save_results
from exporter.config import Config, parse_config
from exporter.config.base import parse_duration
from exporter.connection import CassandraConnection
from exporter.scheduler import ProbeRunner
from probes.base import Probe, ProbeContext
from probes.replication.backlog import ReplicationBacklogProbe
from probes.replication.heartbeat import HeartbeatProbe
from probes.replication.writer import WriterProbe
from testbed.cluster import TestbedCluster

KEYSPACE = "cqrs_monitoring"
SERVER_TABLES = (
    "coordinator_read_latency",
    "coordinator_write_latency",
    "local_read_latency",
    "local_write_latency",
)


class CountingConnection(CassandraConnection):
    """Counts requests by (datacenter, kind) as they are sent."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.counting = False

    async def execute(self, query: Any, parameters: Any = None, **kwargs: Any) -> list[Any]:
        if self.counting:
            text = str(getattr(query, "query_string", query))
            kind = (
                "write" if kwargs.get("write")
                else "backlog" if "system_views" in text or "system_virtual_schema" in text
                else "read"
            )
            self.counts[(kwargs["datacenter"], kind)] += 1
        return await super().execute(query, parameters, **kwargs)


def configs(cluster: TestbedCluster, interval: str | None = None) -> tuple[Config, Config]:
    cadence: dict[str, Any] = {}
    if interval is not None:  # another sentinel cadence (and the heartbeat readers expect it)
        cadence = {"interval": interval, "timeout": f"{0.9 * parse_duration(interval):g}s"}
    base: dict[str, Any] = {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {"write": cluster.write_datacenter, "read": list(cluster.read_datacenters)},
        "monitoring": {"create_schema": True, "replication_factor": 1, "writer_id": "load"},
        "probes": {"replication": cadence},
    }
    regional = {
        **base,
        "datacenters": {**base["datacenters"], "local": "eu-west"},
        "probes": {"replication": {**cadence, "mode": "regional"}},
    }
    return parse_config(base), parse_config(regional)


async def server_counts(connection: CassandraConnection, dcs: tuple[str, ...]) -> dict[str, Any]:
    """Cassandra's request counts for the sentinel table, per datacenter's node and kind."""
    counts: dict[str, dict[str, int]] = {}
    for dc in dcs:
        for host in connection.hosts(dc):
            per_kind = counts.setdefault(dc, {})
            for table in SERVER_TABLES:
                try:
                    rows = await connection.execute(
                        f"SELECT count FROM system_views.{table} WHERE keyspace_name = %s "
                        "AND table_name = 'replication_sentinels'",
                        (KEYSPACE,),
                        datacenter=dc,
                        host=host,
                        timeout=5.0,
                    )
                except Exception:
                    continue
                per_kind[table] = per_kind.get(table, 0) + sum(int(r.count) for r in rows)
    return counts


async def phase(
    name: str,
    connection: CountingConnection,
    probes: list[Probe],
    seconds: float,
    dcs: tuple[str, ...],
    during: Any = None,
) -> dict[str, Any]:
    runner = ProbeRunner(probes)
    before = await server_counts(connection, dcs)
    connection.counts.clear()
    connection.counting = True
    started = time.monotonic()
    await runner.start()
    try:
        if during is not None:
            await during()
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        connection.counting = False
        elapsed = time.monotonic() - started
        await runner.stop()
    after = await server_counts(connection, dcs)
    client = {
        f"{dc} {kind}": round(count / elapsed, 2)
        for (dc, kind), count in sorted(connection.counts.items())
    }
    server = {
        dc: {
            table: round((after.get(dc, {}).get(table, 0) - before.get(dc, {}).get(table, 0))
                         / elapsed, 2)
            for table in SERVER_TABLES
        }
        for dc in dcs
    }
    print(f"\n{name} ({elapsed:.0f} s): client requests per second {json.dumps(client)}")
    print(f"  Cassandra's counts per second for the sentinel table: {json.dumps(server)}")
    return {"seconds": elapsed, "client_per_second": client, "server_per_second": server}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = TestbedCluster.load()
    writer_config, regional_config = configs(cluster, args.interval)
    dcs = writer_config.datacenters.all
    connection = CountingConnection(writer_config)
    await connection.connect()
    await ensure_schema_retrying(writer_config, connection)
    result: dict[str, Any] = {"settings": writer_config.probes.replication.model_dump()}
    try:

        def writer_probes() -> list[Probe]:
            context = ProbeContext(writer_config, connection)
            return [
                WriterProbe(context, writer_config.probes.replication),
                ReplicationBacklogProbe(context, writer_config.probes.replication.backlog),
            ]

        result["writer"] = await phase("writer", connection, writer_probes(), args.seconds, dcs)

        async def stall() -> None:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(cluster.pause, "eu-west")
            try:
                await asyncio.sleep(args.pause_seconds)
            finally:
                await asyncio.to_thread(cluster.resume, "eu-west")

        result["writer_eu_west_paused"] = await phase(
            "writer, eu-west paused", connection, writer_probes(), args.pause_seconds + 4.0, dcs,
            during=stall,
        )

        # The regional reader runs beside a writer that keeps writing heartbeats; the writer
        # has its own connection, so only the reader's requests are counted client-side
        # (Cassandra's counts include the writer's own visibility reads in eu-west).
        writer_connection = CassandraConnection(writer_config)
        await writer_connection.connect()
        writer = WriterProbe(
            ProbeContext(writer_config, writer_connection), writer_config.probes.replication
        )
        writer_runner = ProbeRunner([writer])
        await writer_runner.start()
        try:
            reader = HeartbeatProbe(
                ProbeContext(regional_config, connection), regional_config.probes.replication
            )
            result["regional"] = await phase("regional", connection, [reader], args.seconds, dcs)
            await reader.stop()
        finally:
            await writer_runner.stop()
            await writer.stop()
            await writer_connection.close()
    finally:
        await connection.close()
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pause-seconds", type=float, default=10.0)
    parser.add_argument("--interval", help="the sentinel cadence, e.g. 1s (default: 100ms)")
    return parser.parse_args()


if __name__ == "__main__":
    quiet_logging()
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    suffix = "" if arguments.interval is None else f"_every_{arguments.interval}"
    written = save_results("replication_load" + suffix, result)
    print(f"\nwrote {written}")
