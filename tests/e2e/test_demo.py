"""The README's `make run` path: `python -m testbed demo`, with the reference workload.

The demo reuses a testbed that is already running (here the suite's own, found through the
same CQRS_TESTBED_DIR / CQRS_TESTBED_NET a newcomer's shell would have) and leaves it
running when it stops; a keyspace of its own keeps its orders apart from other tests' data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from testbed.demo import demo_config
from tests.latency_support import machine_too_busy
from tests.support import free_port

pytestmark = pytest.mark.cluster


def metric_families(url: str) -> list[Metric]:
    """The families of the exporter's /metrics at `url` (none while it does not answer)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return []
    return list(text_string_to_metric_families(text))


def lag_readings(url: str) -> dict[str, float]:
    """cqrs_read_model_sync_lag_seconds per read model, as a scraper sees them."""
    return {
        sample.labels["read_model"]: sample.value
        for family in metric_families(url)
        if family.name == "cqrs_read_model_sync_lag_seconds"
        for sample in family.samples
    }


def json_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def component_verdicts(url: str) -> dict[str, str]:
    """Every check component's status on /health?verbose (empty while unreachable)."""
    try:
        body = json_get(url + "/health?verbose")
    except OSError:
        return {}
    verdicts = {"overall": body["status"]}
    for check, details in body.get("components", {}).items():
        parts = details.get("components") or {"": details}
        for component, part in parts.items():
            verdicts[f"{check}/{component}".rstrip("/")] = part["status"]
    return verdicts


LATENCY_CHECKS = ("command_latency_p99", "query_latency_p99")


def not_up(verdicts: dict[str, str], *, latency: bool = True) -> dict[str, str]:
    """The checks and components that are not UP; without the latency checks (and the
    overall verdict they set) when `latency` is false."""
    return {
        name: state for name, state in verdicts.items()
        if state != "UP" and (latency or not name.startswith((*LATENCY_CHECKS, "overall")))
    }


def lagged_share(url: str) -> float:
    """The share of the exporter's latency samples it flagged as timed on a late loop."""
    totals = {"lagged": 0.0, "all": 0.0}
    for family in metric_families(url):
        for operation in ("command", "query"):
            if family.name == f"cqrs_{operation}_latency_lagged_samples":
                totals["lagged"] += sum(sample.value for sample in family.samples)
            elif family.name == f"cqrs_{operation}_latency_samples":
                totals["all"] += sum(sample.value for sample in family.samples)
    return totals["lagged"] / totals["all"] if totals["all"] else 0.0


def test_demo_serves_every_read_model_of_the_workload_and_stops_cleanly(
    testbed_cluster: Any, tmp_path: Path
) -> None:
    keyspace = f"demo_{uuid.uuid4().hex[:8]}"
    listen = f"127.0.0.1:{free_port()}"
    prometheus_port = free_port()
    expected = {m.name for m in demo_config(testbed_cluster, listen, keyspace).read_models}
    log = tmp_path / "demo.log"
    env = {
        **os.environ,
        "CQRS_TESTBED_DIR": str(testbed_cluster.base_dir),
        "CQRS_TESTBED_NET": testbed_cluster.net,
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "testbed", "demo", "--listen", listen,
             "--keyspace", keyspace, "--prometheus-port", str(prometheus_port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 240
            readings: dict[str, float] = {}
            while set(readings) != expected:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, (readings, log.read_text()[-3000:])
                time.sleep(1.0)
                readings = lag_readings(f"http://{listen}")
            listening = time.monotonic() if "listening on" in log.read_text() else None
            assert listening is not None, log.read_text()[-3000:]
            # A healthy demo is UP on every check and component within 60 s of listening.
            # The latency checks judge the cluster's p99 against 50 and 100 ms: on a machine
            # whose CPUs are all taken that is the machine's run queue, and the test says so.
            verdicts: dict[str, str] = {}
            while time.monotonic() < listening + 60:
                assert process.poll() is None, log.read_text()
                verdicts = component_verdicts(f"http://{listen}")
                if verdicts and not not_up(verdicts):
                    break
                time.sleep(1.0)
            others = not_up(verdicts, latency=False)
            assert verdicts and not others, (others, log.read_text()[-2000:])
            latency = not_up(verdicts)
            unjudged = machine_too_busy(lagged_share(f"http://{listen}")) if latency else None
            assert not latency or unjudged is not None, (latency, log.read_text()[-2000:])
            rules = json_get(f"http://127.0.0.1:{prometheus_port}/api/v1/rules")
            groups = {group["name"] for group in rules["data"]["groups"]}
            assert groups, rules  # the demo's Prometheus evaluates the generated rules
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "using the testbed already running" in text
    assert "Traceback" not in text
    # A quiet start: nothing a newcomer should worry about.
    assert [line for line in text.splitlines() if " WARNING " in line] == []
    assert f"http://127.0.0.1:{prometheus_port}/alerts" in text
    # Every read model of the workload was measured, within the demo's own keyspace.
    assert all(value >= 0 for value in readings.values()), readings
    assert testbed_cluster.is_running()
    if unjudged is not None:
        pytest.xfail(f"{unjudged}; not UP: {latency} (every other check held)")
