"""/metrics as a scraper meets it: collected on the loop, formatted in the render thread.

No cluster is needed: an exporter whose Cassandra is unreachable still exports every
pre-created series, which is exactly what must render correctly.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Collected
from tests.support import free_port, merge, serve_exporter

CONFIG = {
    "cluster": {"contact_points": ["127.0.0.1"], "connect_timeout": "1s"},
    "datacenters": {"write": "us-east", "read": ["ca-central"]},
}


def unreachable() -> dict[str, Any]:
    return merge(CONFIG, {"cluster": {"port": free_port()}})


async def test_the_text_format_parses_and_matches_a_direct_render() -> None:
    async with serve_exporter(unreachable()) as running:
        status, text = await running.get("/metrics")
        direct = generate_latest(Collected(list(running.exporter.registry.collect())))
    assert status == 200
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"cqrs_up", "cqrs_probe_runs", "cqrs_health_status"} <= names
    # Same families, same series (values such as durations may move between the renders).
    assert [line.split(" ")[0] for line in text.splitlines()] == [
        line.split(" ")[0] for line in direct.decode().splitlines()
    ]


async def test_openmetrics_is_served_when_asked_and_ends_with_eof() -> None:
    async with serve_exporter(unreachable()) as running:
        status, text = await running.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert status == 200
    assert text.endswith("# EOF\n")
    assert any(family.name == "cqrs_up" for family in parse_openmetrics(text))


async def test_gzip_and_concurrent_scrapes_all_answer_in_full() -> None:
    async with serve_exporter(unreachable()) as running:

        async def scrape() -> bytes:
            async with running.http.get(
                running.url + "/metrics",
                headers={"Accept-Encoding": "gzip"},
                auto_decompress=False,
            ) as response:
                assert response.status == 200
                assert response.headers.get("Content-Encoding") == "gzip"
                return gzip.decompress(await response.read())

        bodies = await asyncio.gather(*(scrape() for _ in range(10)))
    expected = {family.name for family in text_string_to_metric_families(bodies[0].decode())}
    assert "cqrs_up" in expected
    for body in bodies:
        assert b"cqrs_up 0.0" in body
        assert {f.name for f in text_string_to_metric_families(body.decode())} == expected
