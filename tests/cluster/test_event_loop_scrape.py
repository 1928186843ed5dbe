"""Scraping /metrics once per second keeps the exporter's event-loop lag low (real testbed).

The exporter runs with its latency probes against the cluster while a separate process
scrapes /metrics once per second, and a fine ticker (5 ms) measures the loop's lag, in
alternating phases with and without the scraper. What scraping can add to that lag is the
time one scrape holds the loop; on a machine shared with many Cassandra nodes the operating
system also takes the CPU away from the process for tens of milliseconds at a time, which
no exporter can prevent. So the cost of a scrape is always held to its bound, and the
wall-clock lag wherever the phases without a scraper show the machine allows judging it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest

from exporter.app import Collected
from exporter.quantiles import exact_quantile
from tests.latency_support import (
    MIN_SAMPLES,
    create_monitoring_schema,
    latency_overrides,
    latency_probe,
    too_busy_to_judge_thresholds,
)
from tests.support import poll_until, serve_exporter

pytestmark = pytest.mark.cluster

TICK = 0.005
PHASE_SECONDS = 5.0
PHASES = 3
BOUND = 0.010
NOISE = 1.25

SCRAPER = textwrap.dedent(
    """
    import sys, time, urllib.request
    url, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and response.read()
        print(round(time.monotonic() - started, 4), flush=True)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    """
)


@pytest.fixture(scope="module", autouse=True)
def monitoring_schema(testbed_config: dict[str, Any]) -> None:
    create_monitoring_schema(testbed_config)


async def measure_lag(seconds: float) -> list[float]:
    """How late a TICK sleep wakes, every tick for `seconds`."""
    lags = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        expected = time.monotonic() + TICK
        await asyncio.sleep(TICK)
        lags.append(max(0.0, time.monotonic() - expected))
    return lags


async def running_probe(running: Any) -> None:
    probe = latency_probe(running)
    await poll_until(
        lambda: all(s.buckets.count >= MIN_SAMPLES for s in probe.series),
        timeout=180,
        interval=0.5,
        message="the latency probe is measuring",
    )


async def test_one_scrape_holds_the_event_loop_for_well_under_10ms(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any
) -> None:
    """The loop's share of a scrape is collecting; the text is formatted in another thread."""
    async with serve_exporter(make_config(latency_overrides())) as running:
        await running_probe(running)
        collecting, formatting = [], []
        for _ in range(20):
            started = time.thread_time()
            families = list(running.exporter.registry.collect())
            collecting.append(time.thread_time() - started)
            started = time.thread_time()
            body = generate_latest(Collected(families))
            formatting.append(time.thread_time() - started)
            await asyncio.sleep(0.05)
        assert b"cqrs_query_duration_seconds_bucket" in body
        status, text = await running.get("/metrics")
        assert status == 200 and "cqrs_query_duration_seconds_bucket" in text
    # The least disturbed of 20 is what the work costs (the others include time the machine
    # took the CPU away): collecting computes no quantiles and does no I/O, and is a small
    # part of the whole, so the loop is held for a fraction of the bound.
    cost = [round(c * 1000, 2) for c in collecting], [round(c * 1000, 2) for c in formatting]
    assert min(collecting) <= BOUND / 4, cost
    assert min(collecting) < min(formatting), cost
    assert min(collecting) + min(formatting) <= BOUND, cost


async def test_scraping_once_per_second_keeps_event_loop_lag_p999_under_10ms(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any
) -> None:
    """Phases with and without a scraper alternate, so both see the same machine; the bound
    is judged where the machine alone keeps the loop well inside it."""
    quiet: list[float] = []
    scraped: list[float] = []
    scrapes: list[float] = []
    async with serve_exporter(make_config(latency_overrides())) as running:
        await running_probe(running)
        for _ in range(PHASES):
            quiet += await measure_lag(PHASE_SECONDS)
            scraper = subprocess.Popen(
                [sys.executable, "-c", SCRAPER, running.url + "/metrics", str(PHASE_SECONDS)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                scraped += await measure_lag(PHASE_SECONDS)
            finally:
                stdout, _ = await asyncio.to_thread(scraper.communicate, timeout=60)
            assert scraper.returncode == 0
            scrapes += [float(line) for line in stdout.split()]
        exported = running.sample("cqrs_event_loop_lag_seconds_count")
    # Once per second, every one answered.
    assert len(scrapes) >= PHASES * (PHASE_SECONDS - 1)
    assert exported is not None and exported > 0
    baseline, p999 = exact_quantile(quiet, 0.999), exact_quantile(scraped, 0.999)
    figures = (
        f"lag p99.9 {p999 * 1000:.1f} ms while scraped, {baseline * 1000:.1f} ms between "
        f"scrapers, over {len(scraped)} and {len(quiet)} ticks"
    )
    busy = await asyncio.to_thread(too_busy_to_judge_thresholds, ())
    if baseline > BOUND:
        busy = f"the machine alone holds the loop back beyond {BOUND * 1000:g} ms"
    if busy:
        pytest.xfail(f"{busy} ({figures})")
    assert len(scraped) >= 0.5 * PHASES * PHASE_SECONDS / TICK, figures  # enough for a p99.9
    # Under the bound, or no worse than the same machine without a scraper (phase-to-phase
    # noise of a p99.9 is a few tens of percent): a scrape holding the loop for 10 ms or
    # more fails either way.
    assert p999 <= max(BOUND, NOISE * baseline + 0.001), figures
