"""`cqrs-exporter demo`: the local testbed, the reference workload, and the exporter on both.

Starts a three-datacenter testbed (or uses one already started with `python -m testbed up`),
runs the reference order service with projection-synced read models, and serves the exporter
with those read models declared, until interrupted. What it started, it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from exporter.config import Config, parse_config
from testbed.cluster import TestbedCluster, TestbedError
from testbed.workload import Knobs, SyncMode, Workload
from testbed.workload_read_models import (
    audit_orders_by_customer,
    audit_orders_by_date,
    checkpoint_projection,
    sentinel_projection,
)
from testbed.workload_schema import DEFAULT_KEYSPACE

log = logging.getLogger("exporter.demo")


def demo_config(cluster: TestbedCluster, listen: str, keyspace: str = DEFAULT_KEYSPACE) -> Config:
    """The exporter's config for the testbed and the reference workload's read models."""
    data: dict[str, Any] = {
        "cluster": {"contact_points": list(cluster.contact_points)},
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {"create_schema": True, "replication_factor": 1},
        "read_models": [
            audit_orders_by_customer(keyspace),
            audit_orders_by_date(keyspace),
            checkpoint_projection(keyspace),
            sentinel_projection(keyspace),
        ],
        "server": {"listen": listen},
    }
    return parse_config(data, "<demo>")


async def run_demo(listen: str, keyspace: str | None = None) -> int:
    keyspace = keyspace or DEFAULT_KEYSPACE
    from exporter.config import parse_listen
    from exporter.serving import EXIT_RUNTIME, serve

    host, port = parse_listen(listen)
    loop = asyncio.get_running_loop()
    running = TestbedCluster.running()
    cluster = running or TestbedCluster()
    started_here = False
    try:
        if running is not None:
            log.info("using the testbed already running in %s", cluster.base_dir)
        else:
            log.info(
                "starting the testbed (%s); the first start downloads the Cassandra jars",
                ", ".join(cluster.datacenters),
            )
            started_here = True
            await loop.run_in_executor(None, cluster.up)
    except TestbedError as exc:
        log.error("cannot start the testbed: %s", exc)
        if started_here:
            await loop.run_in_executor(None, cluster.down)
        return EXIT_RUNTIME

    workload = Workload(
        cluster.contact_points,
        cluster.write_datacenter,
        keyspace=keyspace,
        replication=dict.fromkeys(cluster.datacenters, 1),
        knobs=Knobs(rate=10.0, mode=SyncMode.PROJECTION),
    )
    try:
        await workload.start()
        log.info("reference workload running: 10 orders per second, read models by projection")
        return await serve(demo_config(cluster, listen, keyspace), host, port)
    finally:
        with contextlib.suppress(Exception):
            await workload.stop(drain=2.0)
        if started_here:
            log.info("stopping the testbed")
            await loop.run_in_executor(None, cluster.down)
