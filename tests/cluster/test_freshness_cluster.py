"""Read-your-writes guidance on the real testbed: replication into eu-west delayed by 300 ms
through its proxies moves eu-west's /freshness visibility distribution by the delay (its wait
at p99.9 to the delay and the machine's tail), and healing brings it back. The freshness
window is shortened to 12 s so that it turns over within the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from testbed import TestbedCluster
from tests.support import RunningExporter, poll_until, serve_exporter

pytestmark = [pytest.mark.cluster, pytest.mark.fault]

EU = "eu-west"
DELAY_MS = 300
TOLERANCE = 0.050
TAIL = 0.200
WINDOW = 12.0
P999 = "0.999"


async def eu_west(running: RunningExporter) -> dict[str, Any]:
    status, body = await running.get_json("/freshness")
    assert status == 200, body
    return dict(body["datacenters"].get(EU) or {})


async def wait_at_p999(running: RunningExporter) -> float | None:
    value = (await eu_west(running)).get("wait_seconds", {}).get(P999)
    return None if value is None else float(value)


async def test_a_delay_into_eu_west_moves_its_read_your_writes_wait_and_heal_restores_it(
    healthy_testbed: TestbedCluster, make_config: Callable[..., dict[str, Any]]
) -> None:
    config = make_config({
        "probes": {
            # Two sentinels a second, looked for every 20 ms: 24 visibilities in the window,
            # each within 10 ms of the truth.
            "replication": {"interval": "500ms", "timeout": "450ms", "poll_interval": "20ms"},
        },
        "slo": {"freshness": {"window": "12s", "min_samples": 10}},
    })
    async with serve_exporter(config) as running:

        async def fresh() -> bool:
            wait = await wait_at_p999(running)
            return wait is not None and wait < TOLERANCE

        await poll_until(fresh, timeout=120, interval=0.5, message="eu-west's wait under 50 ms")
        delayed_at = time.monotonic()
        try:
            await asyncio.to_thread(healthy_testbed.delay, EU, DELAY_MS)
            # Once the window has turned over, every visibility in it was delayed.
            while time.monotonic() - delayed_at < WINDOW + 2.0:
                await asyncio.sleep(0.5)
            delayed = await eu_west(running)
            metric = running.sample(
                "cqrs_read_your_writes_wait_seconds",
                {
                    "source_datacenter": "us-east",
                    "target_datacenter": EU,
                    "confidence": P999,
                },
            )
        finally:
            await asyncio.to_thread(healthy_testbed.heal, EU)
        healed_at = time.monotonic()
        await poll_until(fresh, timeout=WINDOW + 60, interval=0.5, message="the wait back")
        back_in = time.monotonic() - healed_at

    wait = delayed["wait_seconds"][P999]
    # The distribution moves by the delay: its median within 50 ms of it. Its p99.9 (the
    # slowest of some 24 sentinels) carries this machine's tail too: 405 and 455 ms were seen
    # at load 3 on 2 cores, so it is held to the delay plus 200 ms, never below the delay.
    assert abs(delayed["quantiles_seconds"]["0.5"] - DELAY_MS / 1000) <= TOLERANCE, delayed
    assert DELAY_MS / 1000 - TOLERANCE <= wait <= DELAY_MS / 1000 + TAIL, delayed
    assert delayed["samples"] >= 10, delayed
    # 300 ms is under the 1 s threshold: eu-west is slow, not stale; read there after the wait.
    assert delayed["stale"] is False and delayed["advice"].startswith("read here"), delayed
    assert metric is not None and abs(metric - wait) <= TOLERANCE, (metric, wait)
    print(f"\neu-west wait at p99.9: {wait * 1000:.0f} ms delayed; back under 50 ms "
          f"{back_in:.1f} s after heal")
