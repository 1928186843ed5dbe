"""How much a /metrics scrape once per second raises the exporter's event-loop lag.

A real exporter (latency probes on, against the testbed) serves HTTP; a 5 ms ticker on its
event loop measures how late the loop wakes. Phases of `--phase` seconds alternate, so both
see the same machine: no scraper, and a scraper (a separate process, one scrape per second,
with the headers Prometheus sends: OpenMetrics and gzip, from the cached render); start-up's
objects are frozen out of the cyclic collector first, as `cqrs-exporter serve` does. Reported
per phase kind: lag p99, p99.9 and max, the scrapes' own durations, and the figure: the
scraped p99.9 less the unscraped one (goal: at most 1 ms).

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.scrape_loop_lag --rounds 6 --phase 10
Writes bench/results/scrape_loop_lag.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiohttp import web

from bench.common import save_results, testbed
from bench.quiet import load, wait_for_quiet
from exporter.app import EXPOSITION, create_app
from exporter.config import parse_config
from exporter.event_loop import freeze_when
from exporter.quantiles import exact_quantile
from exporter.service import Exporter
from probes.latency.probe import LatencyProbe
from testbed import TestbedCluster
from tests.cluster.test_event_loop_scrape import measure_lag

SCRAPER = """
import sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
headers = {"Accept": "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4",
           "Accept-Encoding": "gzip"}
end = time.monotonic() + seconds
while time.monotonic() < end:
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and response.read()
    print(round(time.monotonic() - started, 4), flush=True)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
"""


def config_for(cluster: TestbedCluster) -> Any:
    return parse_config(
        {
            "cluster": {"contact_points": list(cluster.contact_points), "connect_timeout": "10s"},
            "datacenters": {
                "write": cluster.write_datacenter,
                "read": list(cluster.read_datacenters),
            },
            "monitoring": {"create_schema": True, "replication_factor": 1},
            "probes": {"replication": {"enabled": False}},
        }
    )


def figures(lags: list[float]) -> dict[str, Any]:
    return {
        "ticks": len(lags),
        "p99_ms": round(exact_quantile(lags, 0.99) * 1000, 2),
        "p999_ms": round(exact_quantile(lags, 0.999) * 1000, 2),
        "max_ms": round(max(lags) * 1000, 2),
    }


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


async def measure(cluster: TestbedCluster, rounds: int, phase: float) -> dict[str, Any]:
    exporter = Exporter(config_for(cluster))
    app = create_app(exporter)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/metrics"
    lags: dict[str, list[float]] = {"no_scraper": [], "scraped": []}
    scrapes: list[float] = []
    loads: list[float] = []
    try:
        probe = next(p for p in exporter.probes if isinstance(p, LatencyProbe))
        deadline = time.monotonic() + 180
        while not all(s.buckets.count >= 100 for s in probe.series):
            if time.monotonic() > deadline:
                raise RuntimeError("the latency probe is not measuring after 180 s")
            await asyncio.sleep(0.5)
        # As `cqrs-exporter serve` does once every probe has run.
        await freeze_when(lambda: exporter.runner.first_round_done)
        size = len(await asyncio.to_thread(_get, url))
        renders_before = app[EXPOSITION].renders
        for _ in range(rounds):
            loads.append(await asyncio.to_thread(wait_for_quiet))
            lags["no_scraper"] += await measure_lag(phase)
            scraper = subprocess.Popen(
                [sys.executable, "-c", SCRAPER, url, str(phase)],
                stdout=subprocess.PIPE, text=True,
            )
            lags["scraped"] += await measure_lag(phase)
            out, _ = await asyncio.to_thread(scraper.communicate, timeout=60)
            scrapes += [float(v) for v in out.split()]
        renders = app[EXPOSITION].renders - renders_before
        loads.append(load())
    finally:
        await runner.cleanup()
        gc.unfreeze()
    quiet, scraped = figures(lags["no_scraper"]), figures(lags["scraped"])
    return {
        "rounds": rounds,
        "phase_seconds": phase,
        "metrics_bytes": size,
        "loop_lag": {"no_scraper": quiet, "scraped": scraped},
        "p999_added_ms": round(scraped["p999_ms"] - quiet["p999_ms"], 2),
        "scrapes": len(scrapes),
        "renders": renders,
        "scrape_ms_median": round(sorted(scrapes)[len(scrapes) // 2] * 1000, 2),
        "load_average": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--phase", type=float, default=5.0, help="seconds per phase")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    with testbed() as cluster:
        result = asyncio.run(measure(cluster, args.rounds, args.phase))
    for kind, values in result["loop_lag"].items():
        print(f"{kind:>20}: {values}")
    print(
        f"p99.9 added by scraping once a second: {result['p999_added_ms']} ms; scrape median "
        f"{result['scrape_ms_median']} ms over {result['scrapes']} scrapes, "
        f"{result['renders']} renders (load {min(result['load_average']):.2f}.."
        f"{max(result['load_average']):.2f})"
    )
    print(f"wrote {save_results('scrape_loop_lag', result)}")


if __name__ == "__main__":
    main()
