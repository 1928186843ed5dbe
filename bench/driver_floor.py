"""CPU per request: the exporter at defaults against a bare cassandra-driver loop.

Both run side by side, as processes of their own, against the same testbed:

- the exporter (`cqrs-exporter serve` at defaults, not scraped), with every request it
  sends counted by kind (read or write) and execution profile (datacenter);
- a bare driver loop, from the same `Cluster` set-up (`CassandraConnection._build_cluster`),
  that sends the same mix at the same rates (measured from the exporter over the warm-up):
  the latency probe's prepared INSERT and SELECT on `command_probe` through the timed
  profiles (rows as tuples, as the latency probe gets them), paced by one thread with
  `time.sleep`, answers counted in the driver's callbacks. That is the floor: what
  sending those requests costs with nothing measured.

Over the same window, CPU seconds per request of each from /proc/<pid>/stat (every thread,
user + system); the figure is the exporter's over the floor's.

Run (it starts a testbed unless one runs in $CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.driver_floor [--seconds 60]
Writes bench/results/driver_floor.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import quiet_logging, save_results, testbed
from bench.quiet import cpu_seconds, load, rss_bytes, wait_for_quiet
from tests.support import config_for, free_port

COUNTED_SERVE = textwrap.dedent(
    """
    import json, signal, sys
    from collections import Counter
    from cassandra.cluster import Session
    from exporter.cli import main

    counts = Counter()
    send = Session.execute_async
    WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN")

    def counted(self, query, *args, **kwargs):
        text = query if isinstance(query, str) else (
            getattr(query, "query_string", None)
            or getattr(getattr(query, "prepared_statement", None), "query_string", "")
        )
        kind = "write" if text.lstrip().upper().startswith(WRITES) else "read"
        profile = kwargs.get("execution_profile")
        counts[f"{kind} {profile if isinstance(profile, str) else 'default'}"] += 1
        return send(self, query, *args, **kwargs)

    Session.execute_async = counted

    def dump(signum, frame):
        with open(sys.argv[1], "w") as out:
            json.dump(counts, out)

    signal.signal(signal.SIGUSR1, dump)
    sys.exit(main(sys.argv[2:]))
    """
)


def snapshot(pid: int, path: Path, timeout: float = 10.0) -> tuple[float, float, Counter[str]]:
    """(wall time, CPU seconds, request counts) of a process that dumps its counts on SIGUSR1."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    now, cpu = time.monotonic(), cpu_seconds(pid)
    deadline = now + timeout
    while True:
        try:
            return now, cpu, Counter(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {pid} wrote no counts to {path}") from None
            time.sleep(0.05)


def bare(spec_path: str, counts_path: str) -> None:
    """The bare driver loop (run as its own process: `--bare SPEC COUNTS`)."""
    from exporter.config import parse_config
    from exporter.connection import CassandraConnection, profile_name
    from probes.latency.requests import PAYLOAD, RING, command_cql, probe_read_cql

    spec = json.loads(Path(spec_path).read_text())
    config = parse_config(spec["config"])
    cluster = CassandraConnection(config)._build_cluster()
    session = cluster.connect(wait_for_all_pools=True)
    keyspace = config.monitoring.keyspace
    insert = session.prepare(command_cql(keyspace))
    select = session.prepare(probe_read_cql(keyspace))
    writer, timeout = "driver-floor", config.probes.latency.timeout
    counts: Counter[str] = Counter()

    def answered(_: Any) -> None:
        counts["answered"] += 1

    def failed(_: Any) -> None:
        counts["failed"] += 1

    def dump(signum: int, frame: Any) -> None:
        Path(counts_path).write_text(json.dumps(counts))

    signal.signal(signal.SIGUSR1, dump)
    streams = [
        (profile_name(dc, write=kind == "write", timed=True), kind == "write", 1.0 / rate)
        for kind, dc, rate in spec["streams"]
    ]
    rng = random.Random()
    start = time.monotonic() + 0.1
    due = [(start + i / len(streams) * period, i) for i, (_, _, period) in enumerate(streams)]
    heapq.heapify(due)
    sequence = 0
    while True:
        at, index = due[0]
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        profile, write, period = streams[index]
        if write:
            sequence += 1
            parameters: tuple[Any, ...] = (writer, sequence % RING, sequence, PAYLOAD)
            statement = insert
        else:
            parameters, statement = (writer, rng.randrange(RING)), select
        future = session.execute_async(
            statement, parameters, timeout=timeout, execution_profile=profile
        )
        future.add_callbacks(answered, failed)
        counts["sent"] += 1
        heapq.heapreplace(due, (at + period, index))


def streams_from(counts: Counter[str], seconds: float) -> list[tuple[str, str, float]]:
    """(kind, datacenter, rate) per profile the exporter sent requests through."""
    streams = []
    for key, count in sorted(counts.items()):
        kind, profile = key.split(" ", 1)
        if count == 0:
            continue
        datacenter = profile.split(":", 1)[1] if ":" in profile else profile
        streams.append((kind, datacenter, count / seconds))
    return streams


def measure(cluster: Any, warm: float, seconds: float) -> dict[str, Any]:
    config = config_for(cluster)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [
            sys.executable, "-c", COUNTED_SERVE, str(root / "exporter.json"), "serve",
            "--config", str(root / "config.yaml"), "--listen", f"127.0.0.1:{free_port()}",
        ]
        exporter = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=env)
        floor: subprocess.Popen[bytes] | None = None
        try:
            time.sleep(warm)
            t0, _, c0 = snapshot(exporter.pid, root / "exporter.json")
            time.sleep(min(30.0, warm))
            t1, _, c1 = snapshot(exporter.pid, root / "exporter.json")
            streams = streams_from(c1 - c0, t1 - t0)
            spec = {"config": config, "streams": streams}
            (root / "spec.json").write_text(json.dumps(spec))
            floor = subprocess.Popen(
                [sys.executable, "-m", "bench.driver_floor", "--bare", str(root / "spec.json"),
                 str(root / "floor.json")],
                env=env,
            )
            time.sleep(15)  # connected, prepared, pacing
            load_before = wait_for_quiet()
            e0 = snapshot(exporter.pid, root / "exporter.json")
            f0 = snapshot(floor.pid, root / "floor.json")
            time.sleep(seconds)
            e1 = snapshot(exporter.pid, root / "exporter.json")
            f1 = snapshot(floor.pid, root / "floor.json")
            load_after = load()
            rss = {"exporter": rss_bytes(exporter.pid), "floor": rss_bytes(floor.pid)}
        finally:
            for proc in (floor, exporter):
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    exporter_requests = sum((e1[2] - e0[2]).values())
    floor_requests = (f1[2] - f0[2])["answered"] + (f1[2] - f0[2])["failed"]
    exporter_cpu, floor_cpu = e1[1] - e0[1], f1[1] - f0[1]
    per_exporter = exporter_cpu / exporter_requests
    per_floor = floor_cpu / floor_requests
    return {
        "seconds": round(e1[0] - e0[0], 1),
        "streams": [
            {"kind": k, "datacenter": dc, "rate": round(rate, 2)} for k, dc, rate in streams
        ],
        "exporter": {
            "requests": exporter_requests,
            "requests_per_second": round(exporter_requests / (e1[0] - e0[0]), 1),
            "cpu_seconds": round(exporter_cpu, 2),
            "cpu_share_of_a_core": round(exporter_cpu / (e1[0] - e0[0]), 4),
            "cpu_ms_per_request": round(per_exporter * 1000, 3),
            "rss_mb": round(rss["exporter"] / 2**20, 1),
            "by_profile": dict(e1[2] - e0[2]),
        },
        "floor": {
            "requests": floor_requests,
            "failed": (f1[2] - f0[2])["failed"],
            "requests_per_second": round(floor_requests / (f1[0] - f0[0]), 1),
            "cpu_seconds": round(floor_cpu, 2),
            "cpu_share_of_a_core": round(floor_cpu / (f1[0] - f0[0]), 4),
            "cpu_ms_per_request": round(per_floor * 1000, 3),
            "rss_mb": round(rss["floor"] / 2**20, 1),
        },
        "ratio": round(per_exporter / per_floor, 2),
        "load_average": [load_before, load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warm", type=float, default=40.0, help="exporter warm-up")
    parser.add_argument("--bare", nargs=2, metavar=("SPEC", "COUNTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        quiet_logging()
        threading.current_thread().name = "driver-floor"
        bare(*args.bare)
        return
    quiet_logging()
    with testbed() as cluster:
        result = measure(cluster, args.warm, args.seconds)
    e, f = result["exporter"], result["floor"]
    print(
        f"exporter {e['cpu_ms_per_request']} ms CPU/request ({e['requests_per_second']}/s, "
        f"{e['cpu_share_of_a_core']:.1%} of a core); bare driver {f['cpu_ms_per_request']} ms "
        f"({f['requests_per_second']}/s, {f['cpu_share_of_a_core']:.1%}); ratio "
        f"{result['ratio']} (load {result['load_average'][0]:.2f}..{result['load_average'][1]:.2f})"
    )
    print(f"wrote {save_results('driver_floor', result)}")


if __name__ == "__main__":
    main()
