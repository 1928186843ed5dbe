"""Command line: python -m testbed up|down|status|pause|resume|kill|start|nodetool|workload|demo."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from testbed.cluster import DEFAULT_DATACENTERS, DEFAULT_HEAP, TestbedCluster, default_base_dir
from testbed.errors import TestbedError


def _datacenters(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one datacenter name")
    return names


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 1, like the commands' own."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"testbed: {message} (see `{self.prog} --help`)\n")


def _dir_option(default: object) -> _Parser:
    options = _Parser(add_help=False)
    options.add_argument(
        "--dir",
        type=Path,
        default=default,
        help="folder of the testbed's nodes and state "
        "(default: $CQRS_TESTBED_DIR or <repo>/.testbed)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m testbed",
        description="Run a local multi-datacenter Apache Cassandra cluster, "
        "one node per datacenter.",
        parents=[_dir_option(None)],
    )
    # SUPPRESS: a --dir given before the command is not reset by the command's default.
    common = _dir_option(argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up", parents=[common], help="start a fresh cluster and leave it running"
    )
    up.add_argument(
        "--datacenters",
        type=_datacenters,
        default=DEFAULT_DATACENTERS,
        help="comma-separated datacenter names, the first is the write DC "
        f"(default: {','.join(DEFAULT_DATACENTERS)})",
    )
    up.add_argument(
        "--net",
        default=None,
        help="loopback prefix for node addresses (default: $CQRS_TESTBED_NET or 127.0.0)",
    )
    up.add_argument(
        "--heap", default=DEFAULT_HEAP, help=f"JVM heap per node (default: {DEFAULT_HEAP})"
    )
    up.add_argument(
        "--password-auth",
        "--auth",
        dest="password_auth",
        action="store_true",
        help="PasswordAuthenticator and CassandraAuthorizer (superuser cassandra/cassandra)",
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds each start phase may take (default: $CQRS_TESTBED_START_TIMEOUT or 180)",
    )

    commands.add_parser("down", parents=[common], help="stop every node")
    commands.add_parser(
        "jars", parents=[common], help="download the Cassandra jars into the cache, if absent"
    )
    commands.add_parser("status", parents=[common], help="show each node's state")
    for name, text in (
        ("pause", "freeze a node (SIGSTOP)"),
        ("resume", "unfreeze a paused node (SIGCONT)"),
        ("kill", "crash a node (SIGKILL)"),
        ("start", "start a stopped node again on its data"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("dc", metavar="DC")
    nodetool = commands.add_parser("nodetool", parents=[common], help="run nodetool against a node")
    nodetool.add_argument("dc", metavar="DC")
    nodetool.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    commands.add_parser(
        "workload", add_help=False, help="run the reference CQRS workload (--help for its options)"
    )
    commands.add_parser(
        "demo", add_help=False, help="serve the exporter on the testbed and the reference workload"
    )
    return parser


def _print_nodes(cluster: TestbedCluster) -> None:
    for node in cluster.nodes:
        role = "write" if node.dc == cluster.write_datacenter else "read"
        address = f"{node.address}:{node.native_port}"
        print(f"  {node.dc:<14} {address:<16} {role:<5}  jmx {node.jmx_port}  pid {node.pid}")


def _up(args: argparse.Namespace, base_dir: Path) -> int:
    if TestbedCluster.running(base_dir) is not None:
        raise TestbedError(
            f"a testbed is already running in {base_dir}; run `python -m testbed down` first"
        )
    cluster = TestbedCluster(
        args.datacenters,
        net=args.net,
        base_dir=base_dir,
        heap=args.heap,
        password_auth=args.password_auth,
        start_timeout=args.timeout,
    )
    began = time.monotonic()
    # Progress on stderr while the nodes start; the summary below goes to stdout.
    logging.basicConfig(level=logging.INFO, format="testbed: %(message)s", stream=sys.stderr)
    cluster.up()
    print(f"testbed {cluster.cluster_name} up in {time.monotonic() - began:.1f} s ({base_dir})")
    _print_nodes(cluster)
    print(f"contact points: {','.join(cluster.contact_points)}")
    print(f"write datacenter: {cluster.write_datacenter}")
    print(f"read datacenters: {','.join(cluster.read_datacenters)}")
    if cluster.credentials:
        print(f"credentials: {cluster.credentials[0]}/{cluster.credentials[1]}")
    return 0


def _status(cluster: TestbedCluster) -> int:
    print(f"{'DC':<14} {'ADDRESS':<15} {'PID':>8}  {'STATE':<8} {'CQL':<4} {'RSS':>8}")
    for node in cluster.status():
        rss = f"{node.rss_bytes / 2**20:.0f}MiB" if node.rss_bytes else "-"
        cql = "yes" if node.cql else "no"
        pid = node.pid or "-"
        print(f"{node.dc:<14} {node.address:<15} {pid:>8}  {node.state:<8} {cql:<4} {rss:>8}")
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["workload"]:
        from testbed.workload.cli import main as workload_main

        return workload_main(argv[1:])
    if argv[:1] == ["demo"]:
        from testbed.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    base_dir = (args.dir or default_base_dir()).resolve()
    if args.command == "jars":
        from testbed.jars import ensure_jars

        print(ensure_jars())
        return 0
    if args.command == "up":
        return _up(args, base_dir)
    if args.command == "down":
        try:
            cluster = TestbedCluster.load(base_dir)
        except TestbedError:
            print(f"no testbed in {base_dir}")
            return 0
        cluster.down()
        print("testbed stopped")
        return 0
    cluster = TestbedCluster.load(base_dir)
    if args.command == "status":
        return _status(cluster)
    if args.command == "nodetool":
        sys.stdout.write(cluster.nodetool(args.dc, *args.args))
        return 0
    action = getattr(cluster, args.command)
    action(args.dc)
    node = cluster.node(args.dc)
    print(f"{args.dc} ({node.address}): {node.state()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
