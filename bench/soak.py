"""Soak: the exporter for `--minutes` with the reference workload and a scraper once a second.

The exporter (`cqrs-exporter serve`, defaults plus the reference workload's four read models,
as the demo runs it) runs in its own process beside the reference workload (10 orders per
second, projected); a scraper fetches /metrics once a second with Prometheus' headers. After
a warm-up (by default past the latency probes' 5-minute window, whose histogram slices are
allocated as it fills: a few MB), every `--every` seconds the bench reads the exporter's RSS,
open file descriptors and threads from /proc, its asyncio tasks, Python heap blocks, glibc
malloc totals and commonest object types (the exporter dumps them on SIGUSR1: a bench-side
hook, nothing in the product), and the number of series /metrics shows. It reports each at
the start and the end, the RSS slope, the object types that grew most, and the scrapes that
failed.

Goal over 30 minutes: RSS growth at most 5 MB; no growth in fds, tasks or series.

Run (it starts a testbed unless one runs in $CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.soak --minutes 30
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

HOOKED_EXPORTER = textwrap.dedent(
    """
    import asyncio, collections, ctypes, gc, json, signal, sys
    from exporter.cli import main

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2

    def dump(signum, frame):
        heap = libc.mallinfo2()
        types = collections.Counter(type(o).__name__ for o in gc.get_objects())
        reading = {
            "tasks": len(asyncio.all_tasks(asyncio.get_running_loop())),
            "python_blocks": sys.getallocatedblocks(),
            "malloc_in_use_mb": (heap.uordblks + heap.hblkhd) / 2**20,
            "malloc_free_mb": heap.fordblks / 2**20,
            "types": dict(types.most_common(40)),
        }
        with open(sys.argv[1] + ".part", "w") as out:
            json.dump(reading, out)
        import os
        os.replace(sys.argv[1] + ".part", sys.argv[1])

    signal.signal(signal.SIGUSR1, dump)
    sys.exit(main(sys.argv[2:]))
    """
)
"""The exporter run by the bench, with a hook that dumps (on SIGUSR1) its asyncio tasks, its
Python heap (allocated blocks, the commonest object types) and glibc's malloc totals, which
split RSS growth into Python objects and native memory."""

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    "Accept-Encoding": "gzip",
}


def inside(pid: int, path: Path, timeout: float = 10.0) -> dict[str, Any]:
    """What the exporter's hook reports from inside the process."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise RuntimeError("the exporter's hook wrote nothing") from None
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


def reading(pid: int, url: str, hook_path: Path, started: float) -> dict[str, Any]:
    hook = inside(pid, hook_path)
    return {
        "minute": round((time.monotonic() - started) / 60, 2),
        "rss_mb": round(rss_bytes(pid) / 2**20, 2),
        "fds": open_fds(pid),
        "threads": threads(pid),
        "tasks": hook["tasks"],
        "python_blocks": hook["python_blocks"],
        "malloc_in_use_mb": round(hook["malloc_in_use_mb"], 2),
        "malloc_free_mb": round(hook["malloc_free_mb"], 2),
        "series": series(url),
        "load": round(load(), 2),
        "types": hook["types"],
    }


def type_growth(first: dict[str, int], last: dict[str, int], top: int = 10) -> dict[str, int]:
    """The object types whose count grew most between two readings."""
    grown = {name: last.get(name, 0) - first.get(name, 0) for name in set(first) | set(last)}
    return dict(sorted(((n, g) for n, g in grown.items() if g), key=lambda x: -abs(x[1]))[:top])


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
                sys.executable, "-c", HOOKED_EXPORTER, str(root / "hook.json"), "serve",
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
                samples = [reading(exporter.pid, url, root / "hook.json", started)]
                print(json.dumps({k: v for k, v in samples[-1].items() if k != "types"}),
                      flush=True)
                end = started + minutes * 60
                while time.monotonic() < end:
                    time.sleep(min(every, max(0.0, end - time.monotonic())))
                    samples.append(reading(exporter.pid, url, root / "hook.json", started))
                    print(json.dumps({k: v for k, v in samples[-1].items() if k != "types"}),
                      flush=True)
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
                   for key in ("rss_mb", "fds", "threads", "tasks", "series", "python_blocks",
                               "malloc_in_use_mb", "malloc_free_mb")},
        "types_grown": type_growth(first["types"], last["types"]),
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "rss_slope_mb_per_hour": round(slope_mb_per_hour(samples), 2),
        "scrapes": {"ok": scraper.ok, "failed": scraper.failed,
                    "slowest_ms": round(scraper.slowest * 1000, 1)},
        "load_average": [load_at_start, load()],
        "samples": [{k: v for k, v in s.items() if k != "types"} for s in samples],
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
