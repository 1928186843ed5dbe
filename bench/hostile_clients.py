"""Hostile clients against a real exporter: slow request heads, then a scrape storm.

(a) `--idle` connections (default 2,000) that send half a request head and then nothing:
    /health/live latency throughout (goal: p99 <= 100 ms), the exporter's RSS before,
    during and after, and when each idle connection was closed (over the connection cap:
    at once; within it: by `server.http.header_timeout`).
(b) `--scrapes` concurrent `GET /metrics` (default 1,000): /health/live latency throughout
    (goal: max <= 500 ms) and RSS a minute later against the baseline (goal: within 20 MB).

The exporter runs as its own process (`python -m exporter serve`) against a cluster that
never answers (contact point 127.0.0.1, port 1): the HTTP side is what is measured. Each
latency figure sits beside its reference, /health/live measured the same way with no
hostile client, as a ratio. The bench waits (up to --load-wait s) for a 1-minute load
average under 2 before it starts and prints the load beside every figure.

Run: .venv/bin/python -m bench.hostile_clients
Writes bench/results/hostile_clients.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import quiet
from bench.common import save_results
from testbed.processes import stop_child
from tests.support import free_port

HEADER_TIMEOUT = 10.0
GOAL_IDLE_P99_MS = 100.0
GOAL_STORM_MAX_MS = 500.0
GOAL_RSS_MB = 20.0


def load() -> float:
    return round(quiet.load(), 2)


def rss_mb(pid: int) -> float:
    return round(quiet.rss_bytes(pid) / 2**20, 1)


def raise_fd_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def _probe(host: str, port: int, interval: float, ready: Any, stop: Any, out: Any) -> None:
    """In its own process, so that the bench's own clients do not delay the probe."""
    samples: list[float] = []
    failures = 0
    ready.set()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request("GET", "/health/live")
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
            connection.close()
        except OSError:
            ok = False
        if ok:
            samples.append((time.perf_counter() - started) * 1000)
        else:
            failures += 1
        time.sleep(interval)
    out.put((samples, failures))


class Prober:
    """GET /health/live on a new connection every `interval` s, as kubelet does, from a
    process of its own."""

    def __init__(self, port: int, interval: float = 0.02) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._out: Any = context.Queue()
        self._process = context.Process(
            target=_probe, args=("127.0.0.1", port, interval, self._ready, self._stop, self._out)
        )
        self._process.start()

    async def started(self) -> Prober:
        if not await asyncio.to_thread(self._ready.wait, 60):
            raise RuntimeError("the prober process did not start")
        return self

    async def result(self) -> dict[str, Any]:
        self._stop.set()
        samples, failures = await asyncio.to_thread(self._out.get, True, 30)
        await asyncio.to_thread(self._process.join, 10)
        if not samples:
            return {"count": 0, "failures": failures, "load": load()}
        # A failed probe is a latency past any goal: the p99 counting them as such.
        counted = sorted(samples) + [float("inf")] * failures
        p99 = counted[min(len(counted) - 1, int(0.99 * len(counted)))]
        return {
            **percentiles(samples),
            "failures": failures,
            "p99_ms_failures_as_infinite": round(p99, 2) if math.isfinite(p99) else None,
            "load": load(),
        }


async def baseline(port: int, seconds: float = 5.0) -> dict[str, Any]:
    prober = await Prober(port).started()
    await asyncio.sleep(seconds)
    return await prober.result()


async def idle_connection(port: int, opened: list[float], closed: list[float | None]) -> None:
    """Half a request head, then nothing; note when the server closed it."""
    index = len(opened)
    opened.append(time.monotonic())
    closed.append(None)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed[index] = time.monotonic()
        return
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
        await writer.drain()
        await reader.read()
    except OSError:
        pass
    closed[index] = time.monotonic()
    writer.close()


async def slow_heads(
    base: str, port: int, pid: int, count: int, probe_port: int | None = None
) -> dict[str, Any]:
    """`probe_port`: probe /health/live there (server.health_listen) instead of `port`."""
    reference = await baseline(probe_port or port)
    rss_before = rss_mb(pid)
    prober = await Prober(probe_port or port).started()
    opened: list[float] = []
    closed: list[float | None] = []
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    for start in range(0, count, 100):  # in bursts: the listen backlog is finite
        for _ in range(min(100, count - start)):
            tasks.append(asyncio.create_task(idle_connection(port, opened, closed)))
        await asyncio.sleep(0.05)
    open_time = time.monotonic() - started
    await asyncio.sleep(1.0)
    rss_during = rss_mb(pid)
    still_open_1s = sum(1 for c in closed if c is None)
    await asyncio.wait(tasks, timeout=HEADER_TIMEOUT + 10)
    health = await prober.result()
    await asyncio.sleep(2.0)
    rss_after = rss_mb(pid)
    lifetimes = [c - o for o, c in zip(opened, closed, strict=True) if c is not None]
    at_once = sum(1 for life in lifetimes if life < 1.0)
    by_deadline = sum(
        1 for life in lifetimes if HEADER_TIMEOUT - 1 <= life <= HEADER_TIMEOUT + 3
    )
    return {
        "idle_connections": count,
        "seconds_to_open_them": round(open_time, 2),
        "open_one_second_after": still_open_1s,
        "closed_at_once_over_the_cap": at_once,
        "closed_by_the_header_deadline": by_deadline,
        "never_closed": sum(1 for c in closed if c is None),
        "longest_lifetime_s": round(max(lifetimes), 2) if lifetimes else None,
        "health_live_reference": reference,
        "health_live_under_load": health,
        "p99_ratio_to_reference": round(health["p99_ms"] / max(reference["p99_ms"], 0.01), 1),
        "goal_p99_ms": GOAL_IDLE_P99_MS,
        "probed_on": "server.health_listen" if probe_port else "the main port",
        "p99_goal_met": health["p99_ms_failures_as_infinite"] <= GOAL_IDLE_P99_MS,
        "rss_mb": {"before": rss_before, "during": rss_during, "after": rss_after},
    }


async def scrape_storm(
    base: str, port: int, pid: int, count: int, settle: float
) -> dict[str, Any]:
    reference = await baseline(port)
    rss_baseline = rss_mb(pid)
    prober = await Prober(port).started()
    done = False
    rss_peak = rss_baseline
    statuses: dict[str, int] = {}

    async def scrape(http: aiohttp.ClientSession) -> None:
        try:
            async with http.get(f"{base}/metrics") as response:
                await response.read()
                key = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1

    async def watch_rss() -> None:
        nonlocal rss_peak
        while not done:
            rss_peak = max(rss_peak, rss_mb(pid))
            await asyncio.sleep(0.2)

    watching = asyncio.create_task(watch_rss())
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    started = time.monotonic()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:
        await asyncio.gather(*(scrape(http) for _ in range(count)))
    storm_seconds = time.monotonic() - started
    await asyncio.sleep(1.0)
    done = True
    await watching
    health = await prober.result()
    await asyncio.sleep(settle)
    rss_later = rss_mb(pid)
    return {
        "concurrent_scrapes": count,
        "scrape_statuses": statuses,
        "storm_seconds": round(storm_seconds, 2),
        "health_live_reference": reference,
        "health_live_during": health,
        "max_ratio_to_reference": round(health["max_ms"] / max(reference["max_ms"], 0.01), 1),
        "goal_max_ms": GOAL_STORM_MAX_MS,
        "max_goal_met": health["max_ms"] <= GOAL_STORM_MAX_MS and health["failures"] == 0,
        "rss_mb": {
            "baseline": rss_baseline,
            "peak": rss_peak,
            f"{settle:g}s_later": rss_later,
            "growth_kept": round(rss_later - rss_baseline, 1),
        },
        "rss_goal_met": rss_later - rss_baseline <= GOAL_RSS_MB,
        "load": load(),
    }


async def wait_live(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < end:
            if process.poll() is not None:
                raise RuntimeError(f"the exporter exited with {process.returncode}")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


async def measure(
    name: str,
    part: Callable[[str, int, int], Awaitable[dict[str, Any]]],
    work: Path,
    health_port: int | None = None,
) -> dict[str, Any]:
    port = free_port()
    server: dict[str, Any] = {"listen": f"127.0.0.1:{port}", "log_level": "WARNING"}
    if health_port is not None:
        server["health_listen"] = f"127.0.0.1:{health_port}"
    config = {
        "cluster": {"contact_points": ["127.0.0.1"], "port": 1, "connect_timeout": "1s"},
        "datacenters": {"write": "us-east"},
        "server": server,
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--config", str(path)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_live(f"{base}/health/live", process)
        await asyncio.sleep(3)  # past start-up
        return await part(base, port, process.pid)
    finally:
        stop_child(process)
        log.close()
        lines = (work / f"{name}.log").read_text(errors="replace").splitlines()
        print(f"exporter log ({len(lines)} lines): " + " | ".join(lines[-5:]), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds before the RSS")
    parser.add_argument("--load-wait", type=float, default=300.0)
    parser.add_argument("--only", choices=("idle", "storm"))
    parser.add_argument("--output", default="hostile_clients", help="bench/results/NAME.json")
    args = parser.parse_args()
    fds = raise_fd_limit()
    start_load = await asyncio.to_thread(
        quiet.wait_for_quiet, quiet.MAX_LOAD, args.load_wait, required=False
    )
    print(f"load average at start: {start_load} (fd limit {fds})", flush=True)
    results: dict[str, Any] = {
        "command": "python -m bench.hostile_clients " + " ".join(sys.argv[1:]),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "load_average_at_start": start_load,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only != "storm":
            idle = await measure(
                "idle", lambda base, port, pid: slow_heads(base, port, pid, args.idle), work
            )
            print(f"(a) slow heads, probed on the main port: {idle}", flush=True)
            results["slow_request_heads"] = idle
            health_port = free_port()
            beside = await measure(
                "idle-health",
                lambda base, port, pid: slow_heads(base, port, pid, args.idle, health_port),
                work,
                health_port,
            )
            print(f"(a) slow heads, probed on server.health_listen: {beside}", flush=True)
            results["slow_request_heads_probed_on_health_listen"] = beside
        if args.only != "idle":
            storm = await measure(
                "storm",
                lambda base, port, pid: scrape_storm(base, port, pid, args.scrapes, args.settle),
                work,
            )
            print(f"(b) scrape storm: {storm}", flush=True)
            results["scrape_storm"] = storm
    results["load_average_at_end"] = load()
    print(f"wrote {save_results(args.output, results)}")


if __name__ == "__main__":
    asyncio.run(main())
