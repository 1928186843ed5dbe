"""Command line: python -m testbed up|down|status|pause|resume|kill|start|delay|partition|heal|
nodetool|workload|demo|chaos."""

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
        "N nodes per datacenter, and play faults on it.",
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
        "--nodes-per-dc",
        type=int,
        default=1,
        metavar="N",
        help="nodes in each datacenter, each a replica of every keyspace made here (default: 1)",
    )
    up.add_argument(
        "--no-replication-proxy",
        dest="replication_proxy",
        action="store_false",
        help="no Toxiproxy between datacenters (then no delay or partition)",
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
        "--tls", action="store_true", help="TLS on the CQL port, with a CA made at start"
    )
    up.add_argument(
        "--mtls", action="store_true", help="--tls, and every client must present a certificate"
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
        ("pause", "freeze DC's nodes (SIGSTOP)"),
        ("resume", "unfreeze DC's paused nodes (SIGCONT)"),
        ("kill", "crash DC's nodes (SIGKILL)"),
        ("start", "start DC's stopped nodes again on their data"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("dc", metavar="DC")
        _node_option(command)
    delay = commands.add_parser(
        "delay", parents=[common], help="one-way latency on replication into DC"
    )
    delay.add_argument("dc", metavar="DC")
    delay.add_argument("latency_ms", type=_milliseconds, metavar="MS")
    delay.add_argument("--jitter", type=_milliseconds, default=0, metavar="MS",
                       help="random variation of the latency, in milliseconds")
    _node_option(delay)
    partition = commands.add_parser(
        "partition", parents=[common],
        help="cut replication into and out of DC; its clients still reach it",
    )
    partition.add_argument("dc", metavar="DC")
    _node_option(partition)
    heal = commands.add_parser(
        "heal", parents=[common], help="remove the replication faults of DC, or of all"
    )
    heal.add_argument("dc", metavar="DC", nargs="?")
    _node_option(heal)
    nodetool = commands.add_parser("nodetool", parents=[common], help="run nodetool against a node")
    nodetool.add_argument("dc", metavar="DC")
    _node_option(nodetool)
    nodetool.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    commands.add_parser(
        "workload", add_help=False, help="run the reference CQRS workload (--help for its options)"
    )
    commands.add_parser(
        "demo", add_help=False, help="serve the exporter on the testbed and the reference workload"
    )
    commands.add_parser(
        "chaos", add_help=False, help="play a fault story on the running demo, watching its alerts"
    )
    return parser


def _node_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--node", type=int, default=None, metavar="I", help="only node I (1, 2, ...) of DC"
    )


def _milliseconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of ms") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} ms: give zero or more")
    return value


def _print_nodes(cluster: TestbedCluster) -> None:
    for node in cluster.nodes:
        role = "write" if node.dc == cluster.write_datacenter else "read"
        address = f"{node.address}:{node.native_port}"
        print(f"  {node.name:<14} {address:<16} {role:<5}  jmx {node.jmx_port}  pid {node.pid}")


def _up(args: argparse.Namespace, base_dir: Path) -> int:
    if TestbedCluster.running(base_dir) is not None:
        raise TestbedError(
            f"a testbed is already running in {base_dir}; run `python -m testbed down` first"
        )
    cluster = TestbedCluster(
        args.datacenters,
        nodes_per_dc=args.nodes_per_dc,
        replication_proxy=args.replication_proxy,
        net=args.net,
        base_dir=base_dir,
        heap=args.heap,
        password_auth=args.password_auth,
        tls="mutual" if args.mtls else "server" if args.tls else None,
        start_timeout=args.timeout,
    )
    began = time.monotonic()
    # Progress on stderr while the nodes start; the summary below goes to stdout.
    logging.basicConfig(level=logging.INFO, format="testbed: %(message)s", stream=sys.stderr)
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    cluster.up()
    print(f"testbed {cluster.cluster_name} up in {time.monotonic() - began:.1f} s ({base_dir})")
    _print_nodes(cluster)
    print(f"contact points: {','.join(cluster.contact_points)}")
    print(f"write datacenter: {cluster.write_datacenter}")
    print(f"read datacenters: {','.join(cluster.read_datacenters)}")
    replicas = ", ".join(f"{dc}: {n}" for dc, n in cluster.replication_factor.items())
    print(f"replicas per datacenter: {replicas}")
    if cluster.replication_proxy:
        print(f"replication proxies: Toxiproxy on {cluster.proxies.api} "
              "(python -m testbed delay|partition|heal)")
    if cluster.credentials:
        print(f"credentials: {cluster.credentials[0]}/{cluster.credentials[1]}")
    if cluster.tls_material is not None:
        _print_tls(cluster)
    return 0


def _print_tls(cluster: TestbedCluster) -> None:
    material = cluster.tls_material
    assert material is not None
    required = "required" if cluster.tls == "mutual" else "not required"
    print(f"tls: {cluster.tls} (client certificates {required})")
    print(f"  ca: {material.ca_cert}")
    print(f"  client cert: {material.client_cert}")
    print(f"  client key: {material.client_key}")


def _status(cluster: TestbedCluster) -> int:
    print(f"{'NODE':<14} {'ADDRESS':<15} {'PID':>8}  {'STATE':<8} {'CQL':<4} {'RSS':>8}")
    for node in cluster.status():
        rss = f"{node.rss_bytes / 2**20:.0f}MiB" if node.rss_bytes else "-"
        cql = "yes" if node.cql else "no"
        pid = node.pid or "-"
        print(f"{node.name:<14} {node.address:<15} {pid:>8}  {node.state:<8} {cql:<4} {rss:>8}")
    _print_faults(cluster)
    return 0


def _print_faults(cluster: TestbedCluster) -> None:
    if not cluster.replication_proxy:
        print("replication faults: none possible (started with --no-replication-proxy)")
        return
    faults = cluster.faults()
    if not faults:
        print("replication faults: none")
    for fault in faults:
        print(f"replication fault: {fault.describe()}")


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["workload"]:
        from testbed.workload.cli import main as workload_main

        return workload_main(argv[1:])
    if argv[:1] == ["demo"]:
        from testbed.demo import main as demo_main

        return demo_main(argv[1:])
    if argv[:1] == ["chaos"]:
        from testbed.chaos import main as chaos_main

        return chaos_main(argv[1:])
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
        sys.stdout.write(cluster.nodetool(args.dc, *args.args, node=args.node or 1))
        return 0
    if args.command == "delay":
        cluster.delay(args.dc, args.latency_ms, jitter_ms=args.jitter, node=args.node)
    elif args.command == "partition":
        cluster.partition(args.dc, node=args.node)
    elif args.command == "heal":
        cluster.heal(args.dc, node=args.node)
    if args.command in ("delay", "partition", "heal"):
        _print_faults(cluster)
        return 0
    getattr(cluster, args.command)(args.dc, args.node)
    for node in cluster.select(args.dc, args.node):
        print(f"{node.name} ({node.address}): {node.state()}")
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
