"""The health endpoints over HTTP: body shapes, status codes, groups, liveness and readiness.

The first tests drive the evaluator with synthetic readings behind the real handlers; the
last ones run a whole exporter whose Cassandra does not exist, to show that liveness and the
health endpoints never wait on it.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exporter.config import Config
from exporter.health.http import HealthHandlers
from exporter.health.readings import ProbeReading
from exporter.results import Check, Observation
from exporter.service import Exporter
from tests.health_support import health_config, lag, write_path
from tests.support import poll_until, serve_exporter

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
GROUPS = {
    "groups": {
        "reads-ca-central": {
            "checks": ["replication_lag/ca-central", "read_model_sync_lag/orders_by_customer"],
            "http_status": {"DEGRADED": 503},
        },
        "writes": {"checks": ["write_path", "command_latency_p99"]},
    }
}
# Nothing listens on port 1: the exporter's Cassandra never answers.
NO_CASSANDRA = {"cluster": {"port": 1, "connect_timeout": "1s"}}


class Driven:
    """The real handlers over an exporter whose evaluator is fed synthetic readings."""

    def __init__(self, exporter: Exporter, url: str, http: aiohttp.ClientSession) -> None:
        self.exporter = exporter
        self.url = url
        self.http = http
        self.runs = 0

    def readings(self, *observations: Observation, times: int = 3) -> None:
        for _ in range(times):
            self.runs += 1
            self.exporter.health.evaluator.evaluate(
                [ProbeReading("synthetic", self.runs, observations)]
            )

    async def get(self, path: str) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        async with self.http.get(self.url + path) as response:
            return response.status, await response.json(), response.headers


@asynccontextmanager
async def driven(config: Config) -> AsyncIterator[Driven]:
    exporter = Exporter(config)
    app = web.Application()
    HealthHandlers(
        config.health, exporter.verdicts, exporter.liveness, exporter.ready
    ).add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            yield Driven(exporter, f"http://127.0.0.1:{port}", http)
    finally:
        await runner.cleanup()


def healthy() -> tuple[Observation, ...]:
    return (
        write_path(1.0),
        lag(0.2, "ca-central"),
        lag(0.3, "eu-west"),
        Observation(Check.READ_MODEL_SYNC_LAG, "orders_by_customer", 0.5),
        Observation(Check.COMMAND_LATENCY_P99, "us-east", 0.02, samples=500),
        Observation(Check.QUERY_LATENCY_P99, "ca-central", 0.004, samples=500),
        Observation(Check.SYNC_FAILURE_RATE, "order_totals", 0.0, compared=0.0, samples=400),
    )


def replace(observations: Iterable[Observation], *new: Observation) -> tuple[Observation, ...]:
    keys = {(o.check, o.component) for o in new}
    return tuple(o for o in observations if (o.check, o.component) not in keys) + new


async def test_terse_body_gives_statuses_only_in_the_actuator_shape() -> None:
    async with driven(health_config()) as api:
        api.readings(*healthy())
        status, body, headers = await api.get("/health")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Cache-Control"] == "no-store"
    assert body == {
        "status": "UP",
        "components": {
            "write_path": {"status": "UP"},
            "replication_lag": {
                "status": "UP",
                "components": {"ca-central": {"status": "UP"}, "eu-west": {"status": "UP"}},
            },
            "read_model_sync_lag": {
                "status": "UP",
                "components": {"orders_by_customer": {"status": "UP"}},
            },
            "command_latency_p99": {"status": "UP"},
            "query_latency_p99": {"status": "UP", "components": {"ca-central": {"status": "UP"}}},
            "sync_failure_rate": {"status": "UP", "components": {"order_totals": {"status": "UP"}}},
        },
    }


async def test_verbose_body_shows_value_threshold_unit_and_since() -> None:
    async with driven(health_config()) as api:
        api.readings(*replace(healthy(), lag(1.7, "ca-central")))
        status, body, _ = await api.get("/health?verbose")
    assert status == 200
    assert body["status"] == "DEGRADED"
    assert ISO.match(body["since"]) and ISO.match(body["evaluated_at"])
    lag_node = body["components"]["replication_lag"]
    assert lag_node["status"] == "DEGRADED" and ISO.match(lag_node["since"])
    ca = lag_node["components"]["ca-central"]
    assert ca["status"] == "DEGRADED" and ISO.match(ca["since"])
    assert ca["details"] == {
        "value": 1.7,
        "threshold": 1.0,
        "unit": "seconds",
        "reading": "DEGRADED",
    }
    write = body["components"]["write_path"]
    assert write["details"] == {
        "component": "us-east",
        "value": 1.0,
        "threshold": None,
        "unit": None,
        "reading": "UP",
    }
    rate = body["components"]["sync_failure_rate"]["components"]["order_totals"]["details"]
    assert rate == {
        "value": 0.0,
        "compared_value": 0.0,
        "threshold": 0.001,
        "unit": "ratio",
        "reading": "UP",
        "samples": 400,
    }
    command = body["components"]["command_latency_p99"]["details"]
    assert (command["threshold"], command["samples"]) == (0.1, 500)


@pytest.mark.parametrize(
    ("query", "verbose"),
    [("", False), ("?verbose", True), ("?verbose=true", True), ("?verbose=1", True),
     ("?verbose=false", False), ("?verbose=0", False)],
)
async def test_verbose_parameter(query: str, verbose: bool) -> None:
    async with driven(health_config()) as api:
        api.readings(*healthy())
        status, body, _ = await api.get("/health" + query)
    assert status == 200
    assert ("details" in body["components"]["write_path"]) is verbose


async def test_a_bad_verbose_value_is_a_400_naming_the_parameter() -> None:
    async with driven(health_config()) as api:
        status, body, _ = await api.get("/health?verbose=maybe")
    assert status == 400
    assert body == {"error": "verbose must be true or false"}


async def test_down_answers_503_and_degraded_200_by_default() -> None:
    async with driven(health_config()) as api:
        api.readings(*replace(healthy(), lag(2.0, "eu-west")))
        assert (await api.get("/health"))[0] == 200
        api.readings(*replace(healthy(), write_path(0.0)))
        status, body, _ = await api.get("/health")
    assert status == 503
    assert body["status"] == "DOWN"
    assert body["components"]["write_path"]["status"] == "DOWN"


async def test_http_codes_per_status_are_configurable() -> None:
    config = health_config({"health": {"http_status": {"DEGRADED": 429, "UNKNOWN": 503}}})
    async with driven(config) as api:
        status, body, _ = await api.get("/health")
        assert (status, body["status"]) == (503, "UNKNOWN")
        api.readings(*replace(healthy(), lag(2.0, "eu-west")))
        assert (await api.get("/health"))[0] == 429


async def test_a_stale_region_makes_its_group_503_while_the_aggregate_stays_200() -> None:
    async with driven(health_config({"health": GROUPS})) as api:
        api.readings(*healthy())
        status, body, _ = await api.get("/health/reads-ca-central")
        assert (status, body["status"]) == (200, "UP")
        assert set(body["components"]) == {"replication_lag", "read_model_sync_lag"}
        assert set(body["components"]["replication_lag"]["components"]) == {"ca-central"}
        api.readings(*replace(healthy(), lag(2.5, "ca-central")))
        status, body, _ = await api.get("/health/reads-ca-central")
        assert (status, body["status"]) == (503, "DEGRADED")
        assert (await api.get("/health"))[0] == 200
        # The other region's lag is not this group's business.
        api.readings(*replace(healthy(), lag(2.5, "eu-west")))
        assert (await api.get("/health/reads-ca-central"))[0] == 200


async def test_an_unknown_group_is_404_and_fixed_paths_are_not_groups() -> None:
    async with driven(health_config({"health": GROUPS})) as api:
        api.readings(*healthy())
        status, body, _ = await api.get("/health/no-such-group")
        assert (status, body) == (404, {"error": "no such health group"})
        status, body, _ = await api.get("/health/writes")
        assert status == 200
        assert set(body["components"]) == {"write_path", "command_latency_p99"}
        status, body, _ = await api.get("/health/live")
    assert set(body) == {"status", "checks"}  # the liveness handler, not a group


async def test_values_that_are_not_finite_are_shown_as_null() -> None:
    async with driven(health_config()) as api:
        never = Observation(Check.READ_MODEL_SYNC_LAG, "orders_by_customer", math.inf)
        api.readings(*replace(healthy(), never))
        async with api.http.get(api.url + "/health?verbose") as response:
            text = await response.text()
            assert response.status == 503
    assert "Infinity" not in text and "NaN" not in text
    body = json.loads(text)
    model = body["components"]["read_model_sync_lag"]["components"]["orders_by_customer"]
    assert model["status"] == "DOWN" and model["details"]["value"] is None


async def test_the_body_is_rendered_once_per_evaluation() -> None:
    async with driven(health_config()) as api:
        api.readings(*healthy())
        first = await api.get("/health?verbose")
        snapshot = api.exporter.verdicts()
        assert snapshot.cache  # rendered and kept
        assert await api.get("/health?verbose") == first
        api.readings(*healthy(), times=1)
        assert api.exporter.verdicts() is not snapshot


# --- a whole exporter, with no Cassandra at all -------------------------------------------


def no_cassandra_config(**health: Any) -> dict[str, Any]:
    return {
        "cluster": {"contact_points": ["127.0.0.1"], **NO_CASSANDRA["cluster"]},
        "datacenters": {"write": "us-east", "read": ["ca-central"]},
        "probes": {
            # Cassandra never answers here: the probes start (and fail) after a short grace.
            "startup_grace": "3s",
            "reachability": {"interval": "1s", "timeout": "500ms"},
            "replication": {"enabled": False},
            "latency": {"enabled": False},
        },
        "health": health,
    }


async def test_liveness_is_up_and_readiness_down_without_cassandra() -> None:
    async with serve_exporter(no_cassandra_config()) as running:
        status, body = await running.get_json("/health/live")
        assert status == 200
        assert body == {
            "status": "UP",
            "checks": {"probe_scheduler": True, "health_evaluation": True},
        }
        status, body = await running.get_json("/health/ready")
        assert status == 503
        assert body["checks"]["session_established"] is False


async def test_health_answers_at_once_and_turns_down_when_cassandra_never_answers() -> None:
    async with serve_exporter(no_cassandra_config()) as running:
        started = time.monotonic()
        status, body = await running.get_json("/health")
        assert time.monotonic() - started < 1.0
        # Starting: the probes wait for a session and the schema, at most the startup grace.
        assert status == 200 and body["status"] == "UNKNOWN"
        status, ready = await running.get_json("/health/ready")
        assert status == 503 and ready["checks"]["schema_checked"] is False
        status, live = await running.get_json("/health/live")
        assert status == 200, live

        async def down() -> bool:
            code, current = await running.get_json("/health")
            return code == 503 and current["components"]["write_path"]["status"] == "DOWN"

        # Three failed reachability runs at 1 s, with a wide margin for a loaded machine.
        await poll_until(down, timeout=30, message="write_path DOWN")
        assert running.sample(
            "cqrs_health_status", {"check": "write_path", "status": "DOWN"}
        ) == 1.0
        assert running.sample("cqrs_health_overall_status", {"status": "DOWN"}) == 1.0


async def test_liveness_fails_when_the_health_evaluation_stops() -> None:
    async with serve_exporter(no_cassandra_config()) as running:
        await poll_until(
            lambda: running.exporter.health.alive(), timeout=10, message="evaluation running"
        )
        await running.exporter.health.stop()
        status, body = await running.get_json("/health/live")
    assert status == 503
    assert body["checks"]["health_evaluation"] is False
