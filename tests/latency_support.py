"""Helpers (no tests here) for the latency tests on the real testbed: taps, Prometheus."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.quantiles import BucketHistogram, SlidingHistogram
from exporter.schema import ensure_schema
from probes.latency.probe import LatencyProbe
from probes.latency.series import LatencySeries, Operation
from testbed.prometheus import PrometheusServer
from tests.support import RunningExporter, free_port

RATE = 10
"""Requests per second per stream (the default): enough samples within seconds, and light."""
MIN_SAMPLES = 50
BUSY_LOAD = 2.0
"""Load average per CPU above which Cassandra itself waits for a CPU."""
BUSY_JITTER = 0.005
"""Sleep overshoot (p99) above which the machine, not the cluster, sets the latencies."""
BUSY_LAGGED = 0.02
"""Share of timings flagged as taken while the event loop was late, above which likewise."""


def latency_overrides(**latency: Any) -> dict[str, Any]:
    """Only the probes under test: the replication probes would add load and noise."""
    return {
        "probes": {
            "replication": {"enabled": False},
            "latency": {
                "interval": "2s",
                "timeout": "1s",
                "rate": RATE,
                "min_samples": MIN_SAMPLES,
                **latency,
            },
        }
    }


def latency_probe(running: RunningExporter) -> LatencyProbe:
    return next(p for p in running.exporter.probes if isinstance(p, LatencyProbe))


@dataclass
class Tap:
    """Every value one series records, with when it was recorded (the exact reference)."""

    series: LatencySeries
    values: list[tuple[float, float]] = field(default_factory=list)
    lagged: list[bool] = field(default_factory=list)
    """Whether each value was timed while the event loop was late (flagged by the probe)."""

    def between(self, start: float, end: float) -> list[float]:
        return [v for at, v in self.values if start <= at <= end]

    @property
    def all(self) -> list[float]:
        return [v for _, v in self.values]

    @property
    def unlagged(self) -> list[float]:
        return [v for (_, v), lagged in zip(self.values, self.lagged, strict=True) if not lagged]


def tap(series: LatencySeries) -> Tap:
    """Record what `series` records from now on, and empty its window and buckets so that
    both hold exactly the tapped samples."""
    tapped = Tap(series)
    original = series._sample

    def sample(seconds: float, lagged: bool, count: int = 1) -> None:
        now = time.monotonic()
        tapped.values.extend([(now, seconds)] * count)
        tapped.lagged.extend([lagged] * count)
        original(seconds, lagged, count)

    window = series.window
    series.window = SlidingHistogram(
        window.window, window.slices, clock=time.monotonic, highest=window.highest
    )
    series.buckets = BucketHistogram(series.buckets.bounds)
    series._sample = sample  # type: ignore[method-assign]
    return tapped


def query_series(probe: LatencyProbe, dc: str, query: str = "") -> LatencySeries:
    return probe.series_for(Operation.QUERY, dc, query)


def command_series(probe: LatencyProbe) -> LatencySeries:
    return probe.series_for(Operation.COMMAND, probe.config.datacenters.write)


def bucket_width_at(bounds: tuple[float, ...], value: float) -> float:
    """The width of the bucket that holds `value`."""
    for lower, upper in zip((0.0, *bounds), bounds, strict=False):
        if lower < value <= upper:
            return upper - lower
    return math.inf


class Prometheus:
    """A real Prometheus server scraping one target every second."""

    def __init__(self, url: str, port: int) -> None:
        self.url = url
        self.port = port

    def query(self, expr: str) -> list[dict[str, Any]]:
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(address, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@contextmanager
def prometheus_scraping(target: str) -> Iterator[Prometheus]:
    """Run Debian's Prometheus scraping `target` (host:port) once per second."""
    with tempfile.TemporaryDirectory(prefix="cqrs-prometheus-") as folder:
        server = PrometheusServer(
            Path(folder), [target], free_port(), scrape_interval="1s", evaluation_interval="1s"
        ).start()
        try:
            yield Prometheus(server.url, server.port)
        finally:
            server.stop()


async def wait_for(check: Callable[[], Any], *, timeout: float, message: str) -> Any:
    """Poll a blocking check in a thread (so the exporter's loop keeps running)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.to_thread(check)
        except OSError as exc:  # the server is not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"{message} not met within {timeout:g} s (last: {last!r})")


JITTER_SCRIPT = """
import time
lates = []
end = time.monotonic() + 2.0
while time.monotonic() < end:
    asked = time.monotonic() + 0.005
    time.sleep(0.005)
    lates.append(time.monotonic() - asked)
lates.sort()
print(lates[int(len(lates) * 0.99)])
"""


def scheduling_jitter_p99() -> float:
    """How late a fresh process wakes from 5 ms sleeps (p99 over 2 s): the machine's share."""
    result = subprocess.run(
        [sys.executable, "-c", JITTER_SCRIPT], capture_output=True, text=True, timeout=60
    )
    return float(result.stdout.strip())


def too_busy_to_judge_thresholds(taps: Iterable[Tap]) -> str | None:
    """Why latency thresholds cannot be judged on this machine right now, or None (see
    `machine_too_busy`), with the share of the taps' timings flagged as lagged."""
    counted = [lagged for t in taps for lagged in t.lagged]
    return machine_too_busy(sum(counted) / len(counted) if counted else 0.0)


def machine_too_busy(lagged: float) -> str | None:
    """Why latency thresholds cannot be judged on this machine right now, or None.

    The thresholds are about Cassandra. When more tasks want a CPU than there are, when
    other processes keep this one off the CPU (sleeps overshoot by milliseconds), or when
    the exporter flagged a share `lagged` of its timings as taken while its event loop was
    late, the figures are the machine's, not the cluster's.
    """
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    jitter = scheduling_jitter_p99()
    if load > BUSY_LOAD or jitter > BUSY_JITTER or lagged > BUSY_LAGGED:
        return (
            f"machine too busy to judge latency thresholds: {load:.1f} runnable tasks per "
            f"CPU, sleeps overshoot by {jitter * 1000:.1f} ms at p99, {lagged:.0%} of the "
            "timings were flagged as taken while the event loop was late"
        )
    return None


def create_monitoring_schema(config: dict[str, Any], *, timeout: float = 180.0) -> None:
    """Make sure the monitoring schema exists before an exporter is served.

    A fresh testbed on a busy machine can refuse the first requests; the tests want to
    measure latency, not that start-up, so the schema is created here, with retries.
    """

    async def create() -> None:
        parsed = parse_config(config)
        connection = CassandraConnection(parsed)
        deadline = time.monotonic() + timeout
        try:
            await connection.connect_until_established()
            while True:
                try:
                    await ensure_schema(parsed, connection)
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(2)
        finally:
            await connection.close()

    asyncio.run(create())
