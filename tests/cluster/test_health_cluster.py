"""Health verdicts driven by real faults on the testbed: paused datacenters, a stopped projector,
an alternating failure pattern; and bodies that never leak hosts, users or secrets."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from exporter.results import Check
from testbed.cluster import TestbedCluster
from tests.support import RunningExporter, poll_until, serve_exporter

pytestmark = pytest.mark.cluster

# Probes at 1 s so that three readings (the default hysteresis) take seconds, not minutes.
FAST_PROBES: dict[str, Any] = {
    "probes": {
        "reachability": {"interval": "1s", "timeout": "500ms"},
        "latency": {"enabled": False},
    },
}
FAST: dict[str, Any] = {
    **FAST_PROBES,
    "health": {
        "groups": {
            "reads-ca-central": {
                "checks": ["replication_lag/ca-central"],
                "http_status": {"DEGRADED": 503},
            },
        }
    },
}
FAULT_TIMEOUT = 60.0
"""Generous: the machine is shared by several clusters and the driver backs off."""
RECOVERY_TIMEOUT = 120.0


async def component(running: RunningExporter, check: str, name: str | None = None) -> str | None:
    """A check's (or one of its components') status as /health?verbose shows it."""
    _, body = await running.get_json("/health?verbose")
    node = body["components"].get(check)
    if node is None:
        return None
    if name is not None:
        node = node.get("components", {}).get(name)
    return None if node is None else str(node["status"])


async def wait_status(
    running: RunningExporter, check: str, name: str | None, want: str, timeout: float
) -> None:
    async def reached() -> bool:
        return await component(running, check, name) == want

    label = f"{check}/{name}" if name else check
    try:
        await poll_until(reached, timeout=timeout, interval=0.2, message=f"{label} {want}")
    except AssertionError as exc:
        _, body = await running.get("/health?verbose")
        raise AssertionError(f"{exc}; /health?verbose: {body}") from None


@pytest.mark.fault
async def test_a_paused_write_datacenter_takes_the_write_path_down_with_503(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: TestbedCluster
) -> None:
    async with serve_exporter(make_config(FAST)) as running:
        await wait_status(running, "write_path", None, "UP", RECOVERY_TIMEOUT)
        healthy_testbed.pause("us-east")
        await wait_status(running, "write_path", None, "DOWN", FAULT_TIMEOUT)
        status, body = await running.get_json("/health")
        assert (status, body["status"]) == (503, "DOWN")
        # The exporter itself is fine: it stays live and ready through the breach.
        assert (await running.get_json("/health/live"))[0] == 200
        assert (await running.get_json("/health/ready"))[0] == 200
        assert running.sample("cqrs_health_status", {"check": "write_path", "status": "DOWN"}) == 1
        assert running.sample("cqrs_health_status", {"check": "write_path", "status": "UP"}) == 0

        healthy_testbed.resume("us-east")
        await wait_status(running, "write_path", None, "UP", RECOVERY_TIMEOUT)
        assert running.sample("cqrs_health_status", {"check": "write_path", "status": "UP"}) == 1


@pytest.mark.fault
async def test_a_paused_read_datacenter_degrades_its_replication_lag_and_its_group(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: TestbedCluster
) -> None:
    async with serve_exporter(make_config(FAST)) as running:
        await wait_status(running, "replication_lag", "ca-central", "UP", RECOVERY_TIMEOUT)
        assert (await running.get_json("/health/reads-ca-central"))[0] == 200

        healthy_testbed.pause("ca-central")
        await wait_status(running, "replication_lag", "ca-central", "DEGRADED", FAULT_TIMEOUT)
        status, body = await running.get_json("/health/reads-ca-central?verbose")
        assert (status, body["status"]) == (503, "DEGRADED")
        details = body["components"]["replication_lag"]["components"]["ca-central"]["details"]
        assert details["value"] > details["threshold"] == 1.0
        # DEGRADED is 200 on the aggregate (by default); the other region is unaffected.
        status, body = await running.get_json("/health")
        assert (status, body["status"]) == (200, "DEGRADED")
        assert body["components"]["replication_lag"]["components"]["eu-west"]["status"] == "UP"
        labels = {"check": "replication_lag", "component": "ca-central", "status": "DEGRADED"}
        assert running.sample("cqrs_health_component_status", labels) == 1
        assert running.sample(
            "cqrs_health_group_status", {"group": "reads-ca-central", "status": "DEGRADED"}
        ) == 1
        assert running.sample("cqrs_health_threshold", {"check": "replication_lag"}) == 1.0

        healthy_testbed.resume("ca-central")
        await wait_status(running, "replication_lag", "ca-central", "UP", RECOVERY_TIMEOUT)
        assert (await running.get_json("/health/reads-ca-central"))[0] == 200


@pytest.mark.fault
async def test_a_50_percent_alternating_write_failure_does_not_flap_the_verdict(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: TestbedCluster
) -> None:
    """Pause the write datacenter after every good reading and resume it after every failed
    one, so that real reachability runs alternate; the default hysteresis must hold UP."""
    config = make_config(
        {
            "probes": {
                "reachability": {"interval": "1s", "timeout": "500ms"},
                "replication": {"enabled": False},
                "latency": {"enabled": False},
            },
            # Evaluating faster than the probe runs changes nothing: readings are counted.
            "health": {"evaluation_interval": "250ms"},
        }
    )
    async with serve_exporter(config) as running:
        exporter = running.exporter
        await wait_status(running, "write_path", None, "UP", RECOVERY_TIMEOUT)
        probe = next(p for p in exporter.probes if p.name == "reachability")
        state = exporter.runner.states["reachability"]

        readings: list[bool] = []
        verdicts: set[str] = set()
        last_run = state.runs
        deadline = time.monotonic() + 90
        while len(readings) < 16 and time.monotonic() < deadline:
            snapshot = exporter.verdicts()
            for item in snapshot.overall.components.get(Check.WRITE_PATH, ()):
                verdicts.add(item.status.value)
            if state.runs != last_run:
                last_run = state.runs
                answered = bool(probe.reachable("us-east"))  # type: ignore[attr-defined]
                readings.append(answered)
                # Flip the node so that the next run sees the opposite.
                if answered:
                    healthy_testbed.pause("us-east")
                else:
                    healthy_testbed.resume("us-east")
            await asyncio.sleep(0.05)
        healthy_testbed.resume("us-east")
        await asyncio.sleep(0.5)  # the last evaluation of the last reading
        for item in exporter.verdicts().overall.components.get(Check.WRITE_PATH, ()):
            verdicts.add(item.status.value)

    failures = readings.count(False)
    longest = max(len(run) for run in "".join("F" if not r else "." for r in readings).split("."))
    assert len(readings) >= 12, f"too few probe runs in 90 s: {readings}"
    assert 0.35 <= failures / len(readings) <= 0.65, f"pattern was not ~50 %: {readings}"
    assert longest < 3, f"the faults did not alternate: {readings}"
    assert verdicts == {"UP"}, f"the verdict flapped: {verdicts} over readings {readings}"


async def test_no_body_carries_hosts_users_secrets_or_errors(
    make_config: Callable[..., dict[str, Any]],
    healthy_testbed: TestbedCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s3cret-Pa55word-91f2"
    user = "cqrs_monitor_user"
    monkeypatch.setenv("CQRS_HEALTH_TEST_PASSWORD", secret)
    auth = {"username": user, "password": {"env": "CQRS_HEALTH_TEST_PASSWORD"}}
    config = make_config({**FAST, "cluster": {"auth": auth}})
    forbidden = [secret, user, *healthy_testbed.contact_points, "Traceback", "Exception",
                 "NoHostAvailable", "OperationTimedOut", "NotConnected"]
    paths = ["/", "/health", "/health?verbose", "/health/reads-ca-central?verbose",
             "/health/live", "/health/ready", "/health/unknown-group", "/health?verbose=bad"]

    async def bodies(running: RunningExporter) -> dict[str, str]:
        return {path: (await running.get(path))[1] for path in paths}

    async with serve_exporter(config) as running:
        await wait_status(running, "write_path", None, "UP", RECOVERY_TIMEOUT)
        seen = [await bodies(running)]
        healthy_testbed.pause("ca-central")
        await wait_status(running, "replication_lag", "ca-central", "DEGRADED", FAULT_TIMEOUT)
        seen.append(await bodies(running))
        healthy_testbed.resume("ca-central")

    for sample in seen:
        for path, body in sample.items():
            for word in forbidden:
                assert word not in body, f"{path} shows {word!r}"
    assert "DEGRADED" in seen[1]["/health?verbose"]  # the fault did reach the bodies


async def test_schemathesis_finds_the_live_service_conforms_to_the_openapi_document(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: TestbedCluster
) -> None:
    from tests.unit.test_health_openapi import run_schemathesis

    config = make_config(
        # The document's example group, answering 200 unless DOWN.
        {**FAST_PROBES, "health": {"groups": {"reads-ca-central": {"checks": ["replication_lag"]}}}}
    )
    async with serve_exporter(config) as running:
        async def serving() -> bool:
            ready = (await running.get("/health/ready"))[0] == 200
            return ready and (await running.get("/health"))[0] == 200

        await poll_until(serving, timeout=RECOVERY_TIMEOUT, message="ready and not DOWN")
        code, output = await run_schemathesis(running.url, max_examples=15)
    assert code == 0, output[-6000:]


READ_MODEL_PROBE = "probes.read_models"


@pytest.mark.skipif(
    importlib.util.find_spec(READ_MODEL_PROBE) is None,
    reason=f"needs the read-model probe module {READ_MODEL_PROBE}",
)
@pytest.mark.fault
async def test_a_projector_stopped_beyond_5_s_takes_health_down_with_503(
    make_config: Callable[..., dict[str, Any]], healthy_testbed: TestbedCluster
) -> None:
    from testbed.workload import Knobs, SyncMode, Workload

    config = make_config(
        {
            **FAST,
            "read_models": [
                {
                    "name": "orders_projection",
                    "method": "checkpoint",
                    "interval": "1s",
                    "timeout": "800ms",
                    "checkpoint": {
                        "head_query": "SELECT event_id FROM shop.event_feed "
                        "WHERE day = currentDate() ORDER BY event_id DESC LIMIT 1",
                        "checkpoint_query": "SELECT position FROM shop.projection_checkpoints "
                        "WHERE projector = 'orders'",
                    },
                }
            ],
        }
    )
    workload = Workload(
        healthy_testbed.contact_points,
        healthy_testbed.write_datacenter,
        knobs=Knobs(rate=5.0, mode=SyncMode.PROJECTION),
        replication={dc: 1 for dc in (healthy_testbed.write_datacenter,
                                      *healthy_testbed.read_datacenters)},
    )
    await workload.start(projector=True)
    try:
        async with serve_exporter(config) as running:
            check = "read_model_sync_lag"
            await wait_status(running, check, "orders_projection", "UP", RECOVERY_TIMEOUT)
            await workload.stop_projector()
            stopped = time.time()
            await wait_status(running, check, "orders_projection", "DOWN", FAULT_TIMEOUT)
            status, body = await running.get_json("/health?verbose")
            assert (status, body["status"]) == (503, "DOWN")
            model = body["components"][check]["components"]["orders_projection"]
            assert model["details"]["value"] > 5.0 and model["details"]["threshold"] == 5.0
            # The verdict came with the stopped projector (the lag is the age of the oldest
            # unprojected event, so it may pass 5 s sooner than 5 s after the stop).
            since = datetime.fromisoformat(model["since"].replace("Z", "+00:00")).timestamp()
            assert since >= stopped - 0.5

            workload.start_projector()
            await wait_status(running, check, "orders_projection", "UP", RECOVERY_TIMEOUT)
            assert (await running.get_json("/health"))[0] == 200
    finally:
        await workload.stop(drain=2.0)
