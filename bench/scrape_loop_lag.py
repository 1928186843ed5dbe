"""How much a /metrics scrape once per second raises the exporter's event-loop lag.

A real exporter (latency probes on, against the testbed) serves HTTP; a 5 ms ticker on its
event loop measures how late the loop wakes. Phases of `--phase` seconds alternate, so all
see the same machine: no scraper; a scraper (a separate process, one scrape per second)
with the text formatted on the loop; and the same with it formatted in the render thread
(what /metrics does). Reported per phase kind: lag p99, p99.9 and max, and the scrapes' own
durations.

Run (with a testbed up: `python -m testbed up`, same CQRS_TESTBED_NET / CQRS_TESTBED_DIR):
    .venv/bin/python -m bench.scrape_loop_lag --rounds 4 --phase 5
Writes bench/results/scrape_loop_lag.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import Executor, Future
from typing import Any

from aiohttp import web

from bench.common import save_results, testbed
from exporter.app import RENDERER, create_app
from exporter.config import parse_config
from exporter.quantiles import exact_quantile
from exporter.service import Exporter
from probes.latency.probe import LatencyProbe
from testbed import TestbedCluster
from tests.cluster.test_event_loop_scrape import SCRAPER, measure_lag


class OnTheLoop(Executor):
    """Runs the formatting where it is submitted: on the event loop (the old way)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


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
    render_thread = app[RENDERER]
    lags: dict[str, list[float]] = {"no_scraper": [], "formatted_on_loop": [],
                                    "formatted_in_thread": []}
    scrapes: dict[str, list[float]] = {"formatted_on_loop": [], "formatted_in_thread": []}
    try:
        probe = next(p for p in exporter.probes if isinstance(p, LatencyProbe))
        deadline = time.monotonic() + 180
        while not all(s.buckets.count >= 100 for s in probe.series):
            if time.monotonic() > deadline:
                raise RuntimeError("the latency probe is not measuring after 180 s")
            await asyncio.sleep(0.5)
        size = len(await asyncio.to_thread(_get, url))
        for _ in range(rounds):
            for kind in lags:
                if kind == "no_scraper":
                    lags[kind] += await measure_lag(phase)
                    continue
                # The handler reads the executor from the app at each request (the app is
                # frozen once serving, hence its state mapping).
                app._state[RENDERER] = OnTheLoop() if kind == "formatted_on_loop" else render_thread
                scraper = subprocess.Popen(
                    [sys.executable, "-c", SCRAPER, url, str(phase)],
                    stdout=subprocess.PIPE, text=True,
                )
                lags[kind] += await measure_lag(phase)
                out, _ = await asyncio.to_thread(scraper.communicate, timeout=60)
                scrapes[kind] += [float(v) for v in out.split()]
        app._state[RENDERER] = render_thread
    finally:
        await runner.cleanup()
    return {
        "rounds": rounds,
        "phase_seconds": phase,
        "metrics_bytes": size,
        "loop_lag": {kind: figures(values) for kind, values in lags.items()},
        "scrape_ms_median": {
            kind: round(sorted(v)[len(v) // 2] * 1000, 2) for kind, v in scrapes.items() if v
        },
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
    print(f"scrape duration median: {result['scrape_ms_median']}")
    print(f"wrote {save_results('scrape_loop_lag', result)}")


if __name__ == "__main__":
    main()
