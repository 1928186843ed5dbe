"""What the read-model benchmarks share: an exporter without HTTP, and its probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from exporter.config import parse_config
from exporter.service import Exporter
from probes.read_models.base import ReadModelBase
from testbed import TestbedCluster


def exporter_config(cluster: TestbedCluster, read_models: list[dict[str, Any]]) -> Any:
    return parse_config({
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {"write": cluster.write_datacenter,
                        "read": list(cluster.read_datacenters)},
        "monitoring": {"create_schema": True, "replication_factor": 1},
        "probes": {"latency": {"enabled": False}, "replication": {"enabled": False}},
        "read_models": read_models,
    })


@asynccontextmanager
async def running_exporter(cluster: TestbedCluster,
                           read_models: list[dict[str, Any]]) -> AsyncIterator[Exporter]:
    """A real exporter (scheduler and probes, no HTTP server) connected to the testbed."""
    exporter = Exporter(exporter_config(cluster, read_models))
    await exporter.start()
    deadline = time.monotonic() + 60
    while not exporter.connection.connected:
        if time.monotonic() > deadline:
            raise RuntimeError("the exporter did not connect within 60 s")
        await asyncio.sleep(0.2)
    try:
        yield exporter
    finally:
        await exporter.stop()


def probe(exporter: Exporter, name: str) -> ReadModelBase:
    return next(p for p in exporter.probes
                if isinstance(p, ReadModelBase) and p.read_model.name == name)

