"""Helpers for tests: serve a real exporter on a free port, poll with deadlines, read metrics."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from aiohttp import web

from exporter.app import create_app
from exporter.config import Config, parse_config
from exporter.connection import CassandraConnection
from exporter.service import Exporter

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(config: Path, listen: str = "127.0.0.1:0") -> list[str]:
    """The argv of a real `cqrs-exporter serve` run by this interpreter."""
    return [sys.executable, "-m", "exporter", "serve", "--config", str(config), "--listen", listen]


def serve_until_exit(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the real `cqrs-exporter serve` and wait for it to give up on its own."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        serve_command(path),
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def config_for(cluster: Any) -> dict[str, Any]:
    """An exporter config (as a dict) for a testbed: its nodes, its datacenters, and the
    monitoring keyspace with a replica on every node."""
    return {
        "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
        "datacenters": {
            "write": cluster.write_datacenter,
            "read": list(cluster.read_datacenters),
        },
        "monitoring": {"create_schema": True, "replication_factor": cluster.replication_factor},
    }


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (mappings merge, everything else replaces)."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


@dataclass
class RunningExporter:
    exporter: Exporter
    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.http.get(self.url + path, **kwargs) as response:
            return response.status, await response.text()

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path) as response:
            return response.status, await response.json()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A metric's current value as /metrics would show it (None if absent)."""
        return self.exporter.registry.get_sample_value(name, labels or {})


@asynccontextmanager
async def serve_exporter(config: Config | dict[str, Any]) -> AsyncIterator[RunningExporter]:
    """Run a real exporter (app, scheduler, probes) on 127.0.0.1 and a free port."""
    if isinstance(config, dict):
        config = parse_config(config)
    exporter = Exporter(config)
    runner = web.AppRunner(
        create_app(exporter), handle_signals=False, access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets  # type: ignore[union-attr]
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            yield RunningExporter(exporter, f"http://127.0.0.1:{port}", http)
    finally:
        await runner.cleanup()


async def answering_connection(config: Config, *, timeout: float = 90.0) -> CassandraConnection:
    """A connection whose every configured datacenter has answered a request: just after a
    fault test the driver can still hold a resumed node for down until it reconnects."""
    connection = CassandraConnection(config)
    await connection.connect()

    async def answers() -> bool:
        try:
            for dc in config.datacenters.all:
                await connection.execute("SELECT data_center FROM system.local", datacenter=dc)
        except Exception:
            return False
        return True

    await poll_until(answers, timeout=timeout, interval=0.5, message="every datacenter answers")
    return connection


async def poll_until(
    check: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Call `check` until it returns a truthy value or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last  # type: ignore[no-any-return]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {timeout:g} s (last: {last!r})")
        await asyncio.sleep(interval)
