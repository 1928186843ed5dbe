"""`python -m testbed demo`: the local testbed, the reference workload, and the exporter on both.

Starts a three-datacenter testbed (or uses one already started with `python -m testbed up`),
runs the reference order service with projection-synced read models, and serves the exporter
with those read models declared, until interrupted. What it started, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from exporter.cli import setup_logging
from exporter.config import Config, parse_config, parse_listen
from exporter.serving import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, serve
from testbed.cluster import TestbedCluster
from testbed.errors import TestbedError
from testbed.workload import Knobs, SyncMode, Workload
from testbed.workload.read_models import (
    audit_orders_by_customer,
    audit_orders_by_date,
    checkpoint_projection,
    sentinel_projection,
)
from testbed.workload.schema import DEFAULT_KEYSPACE, check_keyspace

DEFAULT_LISTEN = "127.0.0.1:9469"

# The demo speaks beside the exporter it serves, under the exporter's name.
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
    """Run the demo until SIGTERM or SIGINT; the process exit code, as `serve` gives it."""
    keyspace = keyspace or DEFAULT_KEYSPACE
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


def keyspace_name(text: str) -> str:
    """A CQL keyspace name as argparse checks it: a letter, then letters, digits or _."""
    try:
        return check_keyspace(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a keyspace name (a letter, then up to 47 letters, digits or _)"
        ) from None


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line and exit 2, as a configuration error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"testbed demo: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m testbed demo",
        description="Start the local testbed (or use the running one) and the reference "
        "workload, and serve the exporter on them until interrupted.",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"where the exporter listens (default: {DEFAULT_LISTEN})")
    parser.add_argument(
        "--keyspace",
        type=keyspace_name,
        help=f"keyspace of the reference workload (default: {DEFAULT_KEYSPACE})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        parse_listen(args.listen)
    except ValueError as exc:
        print(f"--listen: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging("INFO", "text")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(args.listen, args.keyspace))
    return EXIT_OK
