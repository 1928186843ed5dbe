"""The service end to end against the real testbed: metrics, liveness, readiness, faults."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import TestbedCluster
from tests.support import RunningExporter, poll_until, serve_exporter

pytestmark = pytest.mark.cluster

PROMTOOL = "/usr/bin/promtool"
FAST_REACHABILITY = {"probes": {"reachability": {"interval": "1s", "timeout": "800ms"}}}


def reachable(running: RunningExporter, dc: str) -> float | None:
    return running.sample("cqrs_datacenter_reachable", {"cassandra_datacenter": dc})


async def test_metrics_show_the_reachability_probe_with_the_right_labels(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: Any
) -> None:
    async with serve_exporter(make_config(FAST_REACHABILITY)) as running:
        await poll_until(
            lambda: running.sample("cqrs_probe_success", {"probe": "reachability"}) == 1.0,
            timeout=60,
            message="reachability probe succeeds",
        )
        lines = [
            f'cqrs_datacenter_reachable{{cassandra_datacenter="{dc}"}} 1.0'
            for dc in ("us-east", "ca-central", "eu-west")
        ]

        async def scraped() -> str | None:
            # A scrape serves a render up to its max age old: poll it, not the registry.
            status, text = await running.get("/metrics")
            return text if status == 200 and all(line in text for line in lines) else None

        text = await poll_until(scraped, timeout=10, message="/metrics shows every datacenter")
        assert "cqrs_up 1.0" in text
        assert 'cqrs_exporter_build_info{python_version="' in text
        for name in (
            "cqrs_probe_duration_seconds",
            "cqrs_probe_last_success_timestamp_seconds",
            "cqrs_probe_skipped_runs_total",
        ):
            assert f'{name}{{probe="reachability"}}' in text
        last = running.sample(
            "cqrs_probe_last_success_timestamp_seconds", {"probe": "reachability"}
        )
        assert last is not None and abs(last - time.time()) < 30

        # Ready once every probe has finished a first run: the reachability probe is only one
        # of them, and the others' first runs may take up to their timeouts (5 s).
        async def ready() -> dict[str, Any] | None:
            status, body = await running.get_json("/health/ready")
            return body if (status, body["status"]) == (200, "UP") else None

        body = await poll_until(ready, timeout=30, message="/health/ready UP")
        assert all(body["checks"].values()), body


async def test_a_full_exposition_passes_promtool_and_shows_the_process_metrics(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any, tmp_path: Path
) -> None:
    """What `promtool check metrics` says of every family, once each probe has data."""
    async with serve_exporter(make_config(FAST_REACHABILITY)) as running:
        await poll_until(
            lambda: (running.sample(
                "cqrs_query_latency_samples", {"cassandra_datacenter": "eu-west", "query": ""}
            ) or 0) > 0 and running.sample(
                "cqrs_replication_lag_seconds",
                {"source_datacenter": "us-east", "target_datacenter": "eu-west"},
            ) is not None,
            timeout=90,
            message="latency samples and a replication lag",
        )
        status, text = await running.get("/metrics")
        window = {"cassandra_datacenter": "eu-west", "query": ""}
        assert (running.sample("cqrs_query_latency_window_seconds_count", window) or 0) > 0
        assert running.sample(
            "cqrs_query_latency_window_seconds", {**window, "quantile": "0.99"}
        ) is not None
    assert status == 200
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""
    for family in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert f"\n{family}" in text


async def test_metrics_are_gzipped_when_asked(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any
) -> None:
    async with serve_exporter(make_config()) as running, running.http.get(
        running.url + "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as response:
        assert response.headers.get("Content-Encoding") == "gzip"
        raw = await response.read()
    import gzip

    assert b"cqrs_up" in gzip.decompress(raw)


@pytest.mark.fault
async def test_pausing_a_datacenter_fails_only_its_reachability_and_endpoints_stay_fast(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: Any, testbed_cluster: Any
) -> None:
    async with serve_exporter(make_config(FAST_REACHABILITY)) as running:
        await poll_until(
            lambda: all(reachable(running, dc) == 1.0 for dc in testbed_cluster.datacenters),
            timeout=60,
            message="all datacenters reachable",
        )
        slowest = 0.0

        async def timed(path: str) -> int:
            nonlocal slowest
            started = time.monotonic()
            status, _ = await running.get(path)
            slowest = max(slowest, time.monotonic() - started)
            return status

        testbed_cluster.pause("eu-west")
        paused_at = time.monotonic()
        try:
            while reachable(running, "eu-west") != 0.0:
                assert await timed("/metrics") == 200
                assert await timed("/health/live") == 200
                # Two intervals, plus the run's timeout and a margin for a loaded machine.
                assert time.monotonic() - paused_at < 2 * 1.0 + 0.8 + 2.0, "eu-west still reachable"
                await asyncio.sleep(0.05)
            assert reachable(running, "us-east") == 1.0
            assert reachable(running, "ca-central") == 1.0
            # Keep scraping through a few failing rounds while the node stays paused.
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                assert await timed("/metrics") == 200
                assert await timed("/health/live") == 200
                await asyncio.sleep(0.1)
            assert running.sample("cqrs_probe_success", {"probe": "reachability"}) == 0.0
            assert (
                running.sample(
                    "cqrs_datacenter_reachability_failures_total",
                    {"cassandra_datacenter": "eu-west", "reason": "timeout"},
                )
                or 0
            ) >= 1
            assert reachable(running, "us-east") == 1.0
            assert reachable(running, "ca-central") == 1.0
        finally:
            testbed_cluster.resume("eu-west")
        assert slowest < 0.5, f"an endpoint took {slowest:.3f} s during the pause"
        await poll_until(lambda: reachable(running, "eu-west") == 1.0, timeout=30)


def _spare_net(net: str) -> str:
    """A loopback /24 beside the session's cluster, for a cluster that starts later."""
    head, third = net.rsplit(".", 1)
    return f"{head}.{(int(third) + 50) % 100}"


async def test_without_cassandra_it_serves_and_recovers_once_the_cluster_is_up(
    testbed_cluster: Any, tmp_path: Path
) -> None:
    late = TestbedCluster(("us-east",), net=_spare_net(testbed_cluster.net), base_dir=tmp_path)
    config = {
        "cluster": {"contact_points": late.contact_points, "connect_timeout": "5s"},
        "datacenters": {"write": "us-east"},
        "monitoring": {"create_schema": True, "replication_factor": 1},
        **FAST_REACHABILITY,
    }
    async with serve_exporter(config) as running:
        await poll_until(
            lambda: running.exporter.runner.first_round_done, timeout=30, message="first round"
        )
        status, text = await running.get("/metrics")
        assert status == 200 and "cqrs_up 0.0" in text
        assert (await running.get("/health/live"))[0] == 200
        status, body = await running.get_json("/health/ready")
        assert status == 503
        assert body["checks"]["session_established"] is False

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, late.up)
        try:
            # The connect loop backs off up to 30 s; allow for that plus a slow machine.
            await poll_until(
                lambda: running.sample("cqrs_up") == 1.0, timeout=90, message="cqrs_up 1"
            )
            # Then the schema is checked and the probes' first round run: ready after that.
            async def ready() -> bool:
                return (await running.get_json("/health/ready"))[0] == 200

            await poll_until(ready, timeout=30, message="/health/ready 200")
        finally:
            await loop.run_in_executor(None, late.down)


async def test_index_page_links_the_endpoints(
    make_config: Callable[..., dict[str, Any]], testbed_cluster: Any
) -> None:
    async with serve_exporter(make_config()) as running:
        status, text = await running.get("/")
        assert status == 200
        for path in ("/metrics", "/health", "/health/live", "/health/ready"):
            assert f'href="{path}"' in text
