"""The cached render behind /metrics: shared renders, a bounded queue, every form once."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import Exposition

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A registry that counts its collections, around a real one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.collections = 0

    def collect(self) -> Iterable[Metric]:
        self.collections += 1
        return list(self.registry.collect())


class Gate:
    """An encoder that counts its calls and, while closed, blocks the render thread."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.calls = 0

    def __call__(self, registry: Any) -> bytes:
        self.calls += 1
        assert self.open.wait(10)
        return bytes(generate_latest(registry))


@pytest.fixture
def gauge() -> tuple[CollectorRegistry, Gauge]:
    registry = CollectorRegistry()
    value = Gauge("cqrs_test_value", "A value the test changes.", registry=registry)
    value.set(1)
    return registry, value


@pytest.fixture
async def renderer() -> AsyncIterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
    yield executor
    executor.shutdown(wait=True)


async def client_for(exposition: Exposition) -> TestClient[Any, Any]:
    app = web.Application()
    app.router.add_get("/metrics", exposition.handle)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_concurrent_scrapes_share_one_render(
    gauge: tuple[CollectorRegistry, Gauge], renderer: ThreadPoolExecutor
) -> None:
    registry = Counting(gauge[0])
    gate = Gate()
    gate.open.clear()
    exposition = Exposition(registry, renderer, clock=Clock())
    scrapes = [
        asyncio.create_task(exposition.body(gate, "text/plain", False)) for _ in range(50)
    ]
    await asyncio.sleep(0.05)
    assert exposition.waiting == 50
    gate.open.set()
    bodies = await asyncio.gather(*scrapes)
    assert registry.collections == 1
    assert gate.calls == 1
    assert all(body is bodies[0] for body in bodies)  # the same bytes, not copies
    assert b"cqrs_test_value 1.0" in bodies[0]
    assert exposition.waiting == 0


async def test_beyond_the_bound_scrapes_get_503_with_retry_after(
    gauge: tuple[CollectorRegistry, Gauge], renderer: ThreadPoolExecutor
) -> None:
    gate = Gate()
    gate.open.clear()
    exposition = Exposition(gauge[0], renderer, max_waiting=3, clock=Clock())
    client = await client_for(exposition)
    try:
        # Waiters through the encoder that blocks, so that they stay waiting.
        waiting = [
            asyncio.create_task(exposition.body(gate, "text/plain", False))
            for _ in range(3)
        ]
        await asyncio.sleep(0.05)
        assert exposition.waiting == 3
        response = await client.get("/metrics")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert exposition.refused == 1
        gate.open.set()
        assert all(await asyncio.gather(*waiting))
        response = await client.get("/metrics")
        assert response.status == 200
    finally:
        gate.open.set()
        await client.close()


async def test_gzip_and_openmetrics_forms_each_made_once_per_render(
    gauge: tuple[CollectorRegistry, Gauge], renderer: ThreadPoolExecutor
) -> None:
    exposition = Exposition(gauge[0], renderer, clock=Clock())
    client = await client_for(exposition)
    try:
        plain = await (await client.get("/metrics")).text()
        for _ in range(3):
            response = await client.get(
                "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
            )
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await response.read()).decode() == plain
        response = await client.get(
            "/metrics",
            headers={"Accept": OPENMETRICS, "Accept-Encoding": "gzip"},
            auto_decompress=False,
        )
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        openmetrics = gzip.decompress(await response.read()).decode()
        assert openmetrics.endswith("# EOF\n")
        assert [f.name for f in parse_openmetrics(openmetrics)] == ["cqrs_test_value"]
        assert [f.name for f in text_string_to_metric_families(plain)] == ["cqrs_test_value"]
        assert exposition.renders == 1
        latest = exposition._latest
        assert latest is not None
        assert sorted(form for form, _ in latest.forms) == [
            ("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
             False),
            ("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
             True),
            ("text/plain; version=0.0.4; charset=utf-8", False),
            ("text/plain; version=0.0.4; charset=utf-8", True),
        ]
    finally:
        await client.close()


async def test_a_changed_value_is_seen_within_the_max_age(
    gauge: tuple[CollectorRegistry, Gauge], renderer: ThreadPoolExecutor
) -> None:
    registry, value = gauge
    clock = Clock()
    exposition = Exposition(registry, renderer, period=0.25, max_age=1.0, clock=clock)
    client = await client_for(exposition)

    async def scrape() -> str:
        response = await client.get("/metrics")
        assert response.status == 200
        return await response.text()

    try:
        assert "cqrs_test_value 1.0" in await scrape()
        value.set(2)
        clock.now += 0.1  # within the period: the same bytes
        assert "cqrs_test_value 1.0" in await scrape()
        clock.now += 0.2  # past the period: collected anew, the previous bytes meanwhile
        await scrape()
        await asyncio.sleep(0.05)
        assert "cqrs_test_value 2.0" in await scrape()
        value.set(3)
        clock.now += 1.5  # past the max age: the scrape waits for the new render
        assert "cqrs_test_value 3.0" in await scrape()
        assert exposition.renders == 3
    finally:
        await client.close()


async def test_the_previous_render_is_never_served_past_the_max_age(
    gauge: tuple[CollectorRegistry, Gauge], renderer: ThreadPoolExecutor
) -> None:
    registry, value = gauge
    clock = Clock()
    exposition = Exposition(registry, renderer, period=0.25, max_age=1.0, clock=clock)
    assert b"cqrs_test_value 1.0" in (await exposition.body(generate_latest, "t", False) or b"")
    value.set(5)
    clock.now += 0.9
    # Younger than the max age: the previous bytes at once, the new render under way.
    assert b"cqrs_test_value 1.0" in (await exposition.body(generate_latest, "t", False) or b"")
    value.set(6)
    clock.now += 0.2
    # The new render is not formatted yet and the previous one is now past the max age:
    # the scrape waits for the new one, which says 5.
    assert b"cqrs_test_value 5.0" in (await exposition.body(generate_latest, "t", False) or b"")


async def test_only_the_newest_bytes_are_held_after_a_storm(
    gauge: tuple[CollectorRegistry, Gauge], renderer: ThreadPoolExecutor
) -> None:
    clock = Clock()
    exposition = Exposition(gauge[0], renderer, clock=clock)
    for _ in range(20):
        clock.now += 0.3
        await asyncio.gather(
            *(exposition.body(generate_latest, "text/plain", flag) for flag in (False, True) * 10)
        )
    assert exposition.renders == 20
    assert exposition.waiting == 0
    await asyncio.sleep(0.1)  # the last render's forms, started for the next scrape
    # The newest render, and each form's newest bytes: nothing per scrape.
    assert sorted(exposition._newest) == [("text/plain", False), ("text/plain", True)]
    assert all(at == clock.now for at, _ in exposition._newest.values())


def test_period_must_not_exceed_the_max_age(renderer: ThreadPoolExecutor) -> None:
    with pytest.raises(ValueError, match="period"):
        Exposition(CollectorRegistry(), renderer, period=2.0, max_age=1.0)
