"""Soak: the exporter for `--minutes` with the reference workload and a scraper once a second.

The exporter (`cqrs-exporter serve`, defaults plus the reference workload's four read models,
as the demo runs it) runs in its own process beside the reference workload (10 orders per
second, projected); a scraper fetches /metrics once a second with Prometheus' headers. After
a warm-up (by default past the latency probes' 5-minute window, whose histogram slices are
allocated as it fills: a few MB), every `--every` seconds the bench reads the exporter's RSS,
open file descriptors and threads from /proc, its asyncio tasks (the exporter dumps their
count on SIGUSR1: a bench-side hook, nothing in the product), and the number of series
/metrics shows. It reports each at the start and the end, the RSS slope, and the scrapes
that failed.

Goal over 30 minutes: RSS growth at most 5 MB; no growth in fds, tasks or series.

Run under the testbed lock (it starts a testbed unless one runs in $CQRS_TESTBED_DIR):
    flock /work/wt/testbed.lock .venv/bin/python -m bench.soak --minutes 30
Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.common import quiet_logging, save_results, testbed
from bench.quiet import load, open_fds, rss_bytes, threads, wait_for_quiet
from testbed.demo import _start_workload
from testbed.processes import stop_child
from testbed.workload.read_models import (
    audit_orders_by_customer,
    audit_orders_by_date,
    checkpoint_projection,
    sentinel_projection,
)
from testbed.workload.schema import DEFAULT_KEYSPACE
from tests.support import config_for, free_port

TASKS_ON_SIGNAL = textwrap.dedent(
    """
    import asyncio, signal, sys
    from exporter.cli import main

    def dump(signum, frame):
        tasks = len(asyncio.all_tasks(asyncio.get_running_loop()))
        with open(sys.argv[1], "w") as out:
            out.write(str(tasks))

    signal.signal(signal.SIGUSR1, dump)
    sys.exit(main(sys.argv[2:]))
    """
)

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    "Accept-Encoding": "gzip",
}


def tasks(pid: int, path: Path, timeout: float = 10.0) -> int:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            if time.monotonic() > deadline:
                raise RuntimeError("the exporter wrote no task count") from None
            time.sleep(0.05)


def series(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


class Scraper(threading.Thread):
    """One scrape a second, as Prometheus asks for it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.done = threading.Event()
        self.ok = 0
        self.failed = 0
        self.slowest = 0.0

    def run(self) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            try:
                request = urllib.request.Request(self.url, headers=PROMETHEUS_HEADERS)
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
                self.ok += 1
            except OSError:
                self.failed += 1
            took = time.monotonic() - started
            self.slowest = max(self.slowest, took)
            self.done.wait(max(0.0, 1.0 - took))


def exporter_config(cluster: Any, keyspace: str) -> dict[str, Any]:
    return {
        **config_for(cluster),
        "read_models": [
            audit_orders_by_customer(keyspace),
            audit_orders_by_date(keyspace),
            checkpoint_projection(keyspace),
            sentinel_projection(keyspace),
        ],
    }


def reading(pid: int, url: str, tasks_path: Path, started: float) -> dict[str, Any]:
    return {
        "minute": round((time.monotonic() - started) / 60, 2),
        "rss_mb": round(rss_bytes(pid) / 2**20, 2),
        "fds": open_fds(pid),
        "threads": threads(pid),
        "tasks": tasks(pid, tasks_path),
        "series": series(url),
        "load": round(load(), 2),
    }


def slope_mb_per_hour(samples: list[dict[str, Any]]) -> float:
    xs = [s["minute"] / 60 for s in samples]
    ys = [s["rss_mb"] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def soak(cluster: Any, minutes: float, every: float, warm: float) -> dict[str, Any]:
    keyspace = DEFAULT_KEYSPACE
    workload = asyncio.run(_start_workload(cluster, keyspace))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "config.yaml").write_text(yaml.safe_dump(exporter_config(cluster, keyspace)))
            port = free_port()
            url = f"http://127.0.0.1:{port}/metrics"
            argv = [
                sys.executable, "-c", TASKS_ON_SIGNAL, str(root / "tasks"), "serve",
                "--config", str(root / "config.yaml"), "--listen", f"127.0.0.1:{port}",
            ]
            with (root / "log").open("wb") as log_file:
                exporter = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log_file)
            scraper = Scraper(url)
            try:
                time.sleep(5)
                scraper.start()
                print(f"warming up for {warm:g} s", flush=True)
                time.sleep(warm)
                # Growth in RSS, fds, tasks and series does not depend on the load.
                load_at_start = wait_for_quiet(timeout=120, required=False)
                started = time.monotonic()
                samples = [reading(exporter.pid, url, root / "tasks", started)]
                print(json.dumps(samples[-1]), flush=True)
                end = started + minutes * 60
                while time.monotonic() < end:
                    time.sleep(min(every, max(0.0, end - time.monotonic())))
                    samples.append(reading(exporter.pid, url, root / "tasks", started))
                    print(json.dumps(samples[-1]), flush=True)
                if exporter.poll() is not None:
                    raise RuntimeError(f"the exporter exited with {exporter.returncode}")
            finally:
                scraper.done.set()
                scraper.join(15)
                exporter.terminate()
                try:
                    exporter.wait(30)
                except subprocess.TimeoutExpired:
                    exporter.kill()
                    exporter.wait()
    finally:
        stop_child(workload)
    first, last = samples[0], samples[-1]
    return {
        "minutes": minutes,
        "warm_up_seconds": warm,
        "start": first,
        "end": last,
        "growth": {key: round(last[key] - first[key], 2)
                   for key in ("rss_mb", "fds", "threads", "tasks", "series")},
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "rss_slope_mb_per_hour": round(slope_mb_per_hour(samples), 2),
        "scrapes": {"ok": scraper.ok, "failed": scraper.failed,
                    "slowest_ms": round(scraper.slowest * 1000, 1)},
        "load_average": [load_at_start, load()],
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between readings")
    parser.add_argument(
        "--warm", type=float, default=360.0,
        help="seconds before the start (past the 5-minute latency window, whose slices fill)",
    )
    args = parser.parse_args()
    quiet_logging()
    with testbed() as cluster:
        result = soak(cluster, args.minutes, args.every, args.warm)
    print(f"growth over {args.minutes:g} min: {result['growth']}; RSS slope "
          f"{result['rss_slope_mb_per_hour']} MB/h; scrapes {result['scrapes']} "
          f"(load {result['load_average'][0]:.2f}..{result['load_average'][1]:.2f})")
    print(f"wrote {save_results('soak', result)}")


if __name__ == "__main__":
    main()
