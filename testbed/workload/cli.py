"""`python -m testbed.workload` (or `python -m testbed workload`): the workload as a process.

It runs against the local testbed unless told other contact points, and prints its
statistics as one JSON line every ten seconds until stopped or its duration is over.
SIGUSR1 stops its projector (the read models fall behind), SIGUSR2 starts it again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence

from testbed.workload.faults import Delay, FailureKind
from testbed.workload.knobs import Knobs, SyncMode
from testbed.workload.schema import DEFAULT_KEYSPACE, check_keyspace, schema_cql
from testbed.workload.service import Workload

log = logging.getLogger(__name__)


def _testbed_defaults() -> tuple[list[str], str, dict[str, int]]:
    """Contact points, write datacenter and replication of the local testbed, if one is up."""
    try:
        from testbed.cluster import TestbedCluster

        cluster = TestbedCluster.load()
    except Exception:
        return ["127.0.0.1"], "us-east", {"us-east": 1}
    return list(cluster.contact_points), cluster.write_datacenter, cluster.replication_factor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.workload",
        description="Run the reference CQRS order workload against Cassandra.",
    )
    parser.add_argument("--contact-points", nargs="+", help="default: the local testbed")
    parser.add_argument("--datacenter", help="the write datacenter (default: the testbed's)")
    parser.add_argument("--keyspace", default=DEFAULT_KEYSPACE)
    parser.add_argument("--replication", help="per datacenter, e.g. us-east:3,eu-west:3")
    parser.add_argument("--rate", type=float, default=10.0, help="commands per second")
    parser.add_argument("--mode", choices=[m.value for m in SyncMode],
                        default=SyncMode.IN_REQUEST.value)
    parser.add_argument("--delay", default="0s",
                        help="async sync delay: 2s, uniform:1s..3s, exp:2s, normal:2s,500ms")
    parser.add_argument("--failure-rate", type=float, default=0.0,
                        help="fraction of read-model writes that fail, e.g. 0.01")
    parser.add_argument("--failure-kind", choices=[k.value for k in FailureKind],
                        default=FailureKind.DROP.value)
    parser.add_argument("--update-share", type=float, default=0.0,
                        help="fraction of commands that change an order's status")
    parser.add_argument("--no-projector", action="store_true", help="leave the projector off")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--print-schema", action="store_true",
                        help="print the schema as CQL and exit")
    return parser


def _replication(text: str | None, default: dict[str, int]) -> dict[str, int]:
    if not text:
        return default
    result = {}
    for part in text.split(","):
        dc, sep, rf = part.partition(":")
        if not sep or not rf.strip().isdigit():
            raise ValueError(f"--replication: {part!r} is not DATACENTER:FACTOR")
        result[dc.strip()] = int(rf)
    return result


async def _run_cli(workload: Workload, duration: float | None, projector: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    switches: set[asyncio.Task[None]] = set()

    def projector_off() -> None:
        log.info("projector stopping (SIGUSR1)")
        task = asyncio.ensure_future(workload.stop_projector())
        switches.add(task)
        task.add_done_callback(switches.discard)

    def projector_on() -> None:
        if not workload.projector_running:
            log.info("projector starting (SIGUSR2)")
            workload.start_projector()

    loop.add_signal_handler(signal.SIGUSR1, projector_off)
    loop.add_signal_handler(signal.SIGUSR2, projector_on)
    await workload.start(projector=projector)
    log.info("workload running: %s", workload.knobs)
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.is_set():
        timeout = 10.0 if deadline is None else max(0.0, min(10.0, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        print(json.dumps(workload.stats.as_dict()), flush=True)
        if deadline is not None and time.monotonic() >= deadline:
            break
    await workload.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    points, write_dc, replication = _testbed_defaults()
    try:
        keyspace = check_keyspace(args.keyspace)
        replication = _replication(args.replication, replication)
        delay = Delay.parse(args.delay)
        if not 0 <= args.failure_rate <= 1 or not 0 <= args.update_share <= 1:
            raise ValueError("--failure-rate and --update-share must be between 0 and 1")
        if args.rate < 0:
            raise ValueError("--rate must not be negative")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_schema:
        print(schema_cql(keyspace, replication), end="")
        return 0
    knobs = Knobs(rate=args.rate, mode=SyncMode(args.mode), delay=delay,
                  failure_rate=args.failure_rate, failure_kind=FailureKind(args.failure_kind),
                  update_share=args.update_share)
    workload = Workload(args.contact_points or points, args.datacenter or write_dc,
                        keyspace=keyspace, knobs=knobs, replication=replication)
    try:
        asyncio.run(_run_cli(workload, args.duration, not args.no_projector))
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
