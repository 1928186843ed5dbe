"""`python -m testbed demo`: the local testbed, the reference workload, and the exporter on both.

Starts a three-datacenter testbed (or uses one already started with `python -m testbed up`),
runs the reference order service with projection-synced read models, and serves the exporter
with those read models declared, until interrupted. What it started, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from exporter.cli import setup_logging
from exporter.config import Config, parse_config, parse_listen
from exporter.config.base import parse_duration
from exporter.generate import render_rules
from exporter.generate.rules import alert_rules
from exporter.generate.settings import Settings
from exporter.serving import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, serve
from testbed.cluster import TestbedCluster, repo_root
from testbed.errors import TestbedError
from testbed.processes import die_with_parent, is_alive, stop_child
from testbed.prometheus import PrometheusServer
from testbed.workload.read_models import (
    audit_orders_by_customer,
    audit_orders_by_date,
    checkpoint_projection,
    sentinel_projection,
)
from testbed.workload.schema import DEFAULT_KEYSPACE, check_keyspace

DEFAULT_LISTEN = "127.0.0.1:9469"
DEMO_MIN_CHECKS = 100
DEMO_SENTINEL_MIN_CHECKS = 8

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
        "monitoring": {"create_schema": True, "replication_factor": cluster.replication_factor},
        # The demo judges failure rates sooner than production would (200 checks): its
        # audits check about three rows a second, its sentinel one every five seconds, and
        # a newcomer should see a verdict in the first minute, not UNKNOWN.
        "read_models": [
            {**audit_orders_by_customer(keyspace), "min_checks": DEMO_MIN_CHECKS},
            {**audit_orders_by_date(keyspace), "min_checks": DEMO_MIN_CHECKS},
            checkpoint_projection(keyspace),
            {**sentinel_projection(keyspace), "min_checks": DEMO_SENTINEL_MIN_CHECKS},
        ],
        "server": {"listen": listen},
    }
    return parse_config(data, "<demo>")


PROMETHEUS_PORT = 9090
WORKLOAD_READY_TIMEOUT = 120.0


def workload_command(cluster: TestbedCluster, keyspace: str) -> list[str]:
    """The reference workload as its own process: 10 orders per second, projected."""
    replication = ",".join(f"{dc}:{n}" for dc, n in cluster.replication_factor.items())
    return [
        sys.executable, "-m", "testbed.workload",
        "--contact-points", *cluster.contact_points,
        "--datacenter", cluster.write_datacenter,
        "--keyspace", keyspace,
        "--replication", replication,
        "--rate", "10",
        "--mode", "projection",
    ]


async def _start_workload(cluster: TestbedCluster, keyspace: str) -> subprocess.Popen[bytes]:
    """Start the workload and wait until its schema is there (it logs `workload running`).

    In its own process it shares no interpreter lock with the exporter, whose latency
    timings would otherwise include the workload's own work.
    """
    log_path = cluster.base_dir / "demo-workload.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            workload_command(cluster, keyspace),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    deadline = time.monotonic() + WORKLOAD_READY_TIMEOUT
    while True:
        with log_path.open("rb") as text:
            text.seek(offset)
            written = text.read()
        if b"workload running" in written:
            return process
        if process.poll() is not None or time.monotonic() > deadline:
            stop_child(process)
            tail = written.decode(errors="replace").strip().splitlines()[-5:]
            raise TestbedError(f"the reference workload did not start: {' / '.join(tail)}")
        await asyncio.sleep(0.2)


DEFAULT_ALERT_FOR = "30s"
STATE_FILE = "demo.json"


def rule_files() -> list[Path]:
    """The generated alert rules, as the repository holds them."""
    return sorted((repo_root() / "alerts").glob("*.rules.yaml"))


def demo_rule_file(directory: Path, config: Config, alert_for: str | None) -> Path:
    """The generated rules for the demo's config; every alert's `for:` set to `alert_for`
    (None: the durations of the committed rules), so that a fault fires within minutes."""
    settings = Settings.from_config(config)
    if alert_for is not None:
        overrides = {rule.name: alert_for for rule in alert_rules(settings)}
        settings = dataclasses.replace(settings, for_overrides=overrides)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rules.yaml"
    path.write_text(render_rules(settings))
    return path


def save_state(base_dir: Path, **state: Any) -> Path:
    """Where the demo's parts are, for `python -m testbed chaos` and other processes."""
    path = base_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **state}, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_state(base_dir: Path) -> dict[str, Any]:
    """The running demo's parts; a TestbedError when no demo runs for this testbed."""
    try:
        state: dict[str, Any] = json.loads((base_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        state = {}
    pid = state.get("pid")
    if not isinstance(pid, int) or not is_alive(pid):
        raise TestbedError(
            f"no demo runs on the testbed in {base_dir}; start it with `make run` "
            "(or `python -m testbed demo`) in another terminal"
        )
    return state


async def run_demo(
    listen: str,
    keyspace: str | None = None,
    prometheus_port: int = PROMETHEUS_PORT,
    alert_for: str | None = DEFAULT_ALERT_FOR,
) -> int:
    """Run the demo until SIGTERM or SIGINT; the process exit code, as `serve` gives it."""
    keyspace = keyspace or DEFAULT_KEYSPACE
    host, port = parse_listen(listen)
    loop = asyncio.get_running_loop()
    running = TestbedCluster.running()
    cluster = running or TestbedCluster()
    started_here = False
    workload: subprocess.Popen[bytes] | None = None
    prometheus: PrometheusServer | None = None
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
        log.info("starting the reference workload (10 orders per second, projected)")
        workload = await _start_workload(cluster, keyspace)
        config = demo_config(cluster, listen, keyspace)
        prometheus_dir = cluster.base_dir / f"demo-prometheus-{prometheus_port}"
        prometheus = PrometheusServer(
            prometheus_dir,
            targets=[f"{host}:{port}"],
            port=prometheus_port,
            rule_files=[demo_rule_file(prometheus_dir, config, alert_for)],
        )
        prometheus.spawn()  # from the loop's thread, which outlives it (see die_with_parent)
        await loop.run_in_executor(None, prometheus.wait_ready)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        save_state(
            cluster.base_dir,
            exporter=f"http://{shown}:{port}",
            prometheus=prometheus.url,
            workload_pid=workload.pid,
            keyspace=keyspace,
            alert_for=alert_for,
        )
        held = f"`for:` {alert_for} for the demo" if alert_for else "`for:` as committed"
        log.info(
            "look at: http://%s:%d/ (status page) · http://%s:%d/health?verbose · "
            "%s/alerts (Prometheus alerts: the generated rules, %s) · "
            "faults: `make chaos` in another terminal",
            shown, port, shown, port, prometheus.url, held,
        )
        return await serve(config, host, port)
    except TestbedError as exc:
        log.error("cannot start the demo: %s", exc)
        return EXIT_RUNTIME
    finally:
        with contextlib.suppress(FileNotFoundError):
            (cluster.base_dir / STATE_FILE).unlink()
        if prometheus is not None:
            prometheus.stop()
        if workload is not None:
            stop_child(workload)
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
    parser.add_argument(
        "--prometheus-port",
        type=int,
        default=PROMETHEUS_PORT,
        metavar="PORT",
        help=f"where the demo's Prometheus listens on 127.0.0.1 (default: {PROMETHEUS_PORT})",
    )
    parser.add_argument(
        "--alert-for",
        type=_alert_for,
        default=DEFAULT_ALERT_FOR,
        metavar="DURATION",
        help="how long a breach lasts before the demo's Prometheus fires its alert "
        f"(default: {DEFAULT_ALERT_FOR}; `rules`: the committed rules' own durations, 2m-5m)",
    )
    return parser


def _alert_for(text: str) -> str | None:
    if text == "rules":
        return None
    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        parse_listen(args.listen)
    except ValueError as exc:
        print(f"--listen: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging("INFO", "text")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(
            run_demo(args.listen, args.keyspace, args.prometheus_port, args.alert_for)
        )
    return EXIT_OK
