"""End to end: a real Prometheus, the generated rules, real exporters, the real testbed.

Debian's Prometheus is started on a free loopback port with a temporary data directory. It
scrapes two real exporters (`cqrs-exporter serve`): a writer beside the write datacenter,
with the reference workload's read models and a declared read-model query, and a regional
exporter in a read datacenter. The reference workload runs throughout.

Shortened for the test, and only here: scrapes every 4 s, evaluation every 1 s, and
CqrsReplicationLagHigh's `for:` is 10s instead of the generated 2m (the rule file is
otherwise the generated one). promtool's cases cover the real `for:` durations.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from exporter.generate import render_dashboard, render_rules, render_slo_rules
from exporter.generate.dashboards import DASHBOARDS
from exporter.generate.rules import alert_rules, recording_rules
from exporter.generate.settings import Settings
from exporter.generate.slo_rules import BUDGET_REMAINING
from testbed.workload import Knobs, Workload, WorkloadThread
from testbed.workload.read_models import (
    audit_orders_by_customer,
    audit_orders_by_date,
    checkpoint_projection,
    sentinel_projection,
)
from tests.support import merge, serve_command

pytestmark = [pytest.mark.cluster]

PROMETHEUS = "/usr/bin/prometheus"
KEYSPACE = "e2e_shop"
ALERT = "CqrsReplicationLagHigh"
TEST_FOR = "10s"
PAUSED = "eu-west"
SCRAPE_SECONDS = 4
# Grafana's variables as the queries are sent to Prometheus: every value, a short window.
GRAFANA_VARIABLES = {
    "$__rate_interval": "30s",
    "$instance": ".*",
    "$datacenter": ".*",
    "$read_model": ".*",
    "$slo": ".*",
}
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T | None], *, timeout: float, interval: float = 0.5, message: str
) -> T:
    """Call `check` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {timeout:g} s (last: {last!r})")
        time.sleep(interval)


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Service:
    """A process this test started, with its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start(name: str, argv: list[str], directory: Path) -> Service:
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ}
        )
    return Service(name, process, log)


@dataclass
class Stack:
    prometheus: str
    targets: dict[str, str]
    cluster: Any
    workload: WorkloadThread
    services: list[Service] = field(default_factory=list)
    setup_seconds: float = 0.0

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", f"{expr}: {data}"
        return list(data["data"]["result"])

    def api(self, path: str) -> Any:
        status, body = http_get(f"{self.prometheus}{path}")
        assert status == 200, body
        return json.loads(body)["data"]

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.tail()}" for s in self.services)


def exporter_configs(testbed_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    writer = merge(
        testbed_config,
        {
            "probes": {
                "latency": {
                    "rate": 5,
                    "queries": [
                        {
                            "name": "orders_by_customer",
                            "cql": f"SELECT order_id, total FROM {KEYSPACE}.orders_by_customer "
                            "WHERE customer_id = ? LIMIT 20",
                            "key_query": f"SELECT customer_id FROM {KEYSPACE}.orders_by_id "
                            "LIMIT 200",
                            "rate": 2,
                        }
                    ],
                },
            },
            "read_models": [
                audit_orders_by_customer(KEYSPACE, budget=4, grace="5s"),
                audit_orders_by_date(KEYSPACE, budget=4, grace="5s"),
                checkpoint_projection(KEYSPACE),
                sentinel_projection(KEYSPACE),
            ],
        },
    )
    local = testbed_config["datacenters"]["read"][0]
    regional = merge(
        testbed_config,
        {
            "datacenters": {"local": local},
            "probes": {
                "replication": {"mode": "regional", "backlog": {"enabled": False}},
                "latency": {"enabled": False, "server": {"enabled": False}},
            },
        },
    )
    return writer, regional


def start_exporter(name: str, config: dict[str, Any], directory: Path) -> tuple[Service, str]:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    service = start(
        name,
        serve_command(path, address),
        directory,
    )
    return service, address


def wait_ready(service: Service, address: str) -> None:
    def ready() -> bool:
        assert service.process.poll() is None, f"{service.name} exited:\n{service.tail()}"
        return http_get(f"http://{address}/health/ready", timeout=5)[0] == 200

    wait_for(ready, timeout=180, interval=1, message=f"{service.name} ready")


def e2e_rule_file(directory: Path, for_: str = TEST_FOR) -> Path:
    """The generated rules, with the one `for:` this test shortens."""
    settings = Settings(for_overrides={ALERT: for_})
    path = directory / "rules.yaml"
    path.write_text(render_rules(settings))
    return path


SLO_TIME_SCALE = 30
"""The SLO rules' windows divided by this here: 1 h and 5 min become 2 min and 10 s."""


def e2e_slo_rule_file(directory: Path) -> Path:
    """The generated SLO rules, every window shortened by SLO_TIME_SCALE."""
    path = directory / "slo-rules.yaml"
    path.write_text(render_slo_rules(Settings(slo_time_scale=SLO_TIME_SCALE)))
    return path


@contextlib.contextmanager
def running_stack(
    cluster: Any, testbed_config: dict[str, Any], directory: Path, *, for_: str = TEST_FOR
) -> Iterator[Stack]:
    """The workload, a writer and a regional exporter, and Prometheus with the rules."""
    started = time.monotonic()
    workload = WorkloadThread(
        Workload(
            cluster.contact_points,
            cluster.write_datacenter,
            keyspace=KEYSPACE,
            knobs=Knobs(rate=5.0),
            replication=dict.fromkeys(cluster.datacenters, 1),
        )
    ).start(create_schema=True, projector=True)
    services: list[Service] = []
    try:
        writer_config, regional_config = exporter_configs(testbed_config)
        writer, writer_address = start_exporter("writer", writer_config, directory)
        services.append(writer)
        wait_ready(writer, writer_address)  # the writer creates the monitoring schema
        regional, regional_address = start_exporter("regional", regional_config, directory)
        services.append(regional)
        wait_ready(regional, regional_address)

        port = free_port()
        config = {
            # Short, but not shorter than a scrape of the writer can take on a loaded 2-core
            # machine (over 2 s was seen): a failed scrape makes every series stale and
            # sends a pending alert back to inactive.
            "global": {
                "scrape_interval": f"{SCRAPE_SECONDS}s",
                "scrape_timeout": f"{SCRAPE_SECONDS}s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(e2e_rule_file(directory, for_)), str(e2e_slo_rule_file(directory))],
            "scrape_configs": [
                {
                    "job_name": "cqrs-exporter",
                    "static_configs": [{"targets": [writer_address, regional_address]}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = start(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            directory,
        )
        services.append(prometheus)
        url = f"http://127.0.0.1:{port}"

        def prometheus_ready() -> bool:
            assert prometheus.process.poll() is None, f"prometheus exited:\n{prometheus.tail()}"
            return http_get(f"{url}/-/ready", timeout=5)[0] == 200

        wait_for(prometheus_ready, timeout=60, message="Prometheus ready")
        stack = Stack(
            url,
            {"writer": writer_address, "regional": regional_address},
            cluster,
            workload,
            services,
        )

        def scraping() -> bool:
            targets = stack.api("/api/v1/targets")["activeTargets"]
            if len(targets) == 2 and all(t["health"] == "up" for t in targets):
                return True
            raise OSError(
                "; ".join(f"{t['scrapeUrl']}: {t['health']} {t['lastError']}" for t in targets)
            )

        wait_for(scraping, timeout=120, message="both exporters scraped")
        stack.setup_seconds = time.monotonic() - started
        yield stack
    finally:
        for service in reversed(services):
            service.stop()
        workload.stop(drain=5.0)


@pytest.fixture(scope="module")
def stack(
    testbed_cluster: Any, testbed_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        testbed_cluster, testbed_config, tmp_path_factory.mktemp("prometheus-e2e")
    ) as running:
        yield running


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query and every variable of every dashboard."""
    found = []
    settings = Settings()
    for stem, build in DASHBOARDS.items():
        data = json.loads(render_dashboard(build(settings)))
        for panel in data["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((f"{stem} / {panel['title']} / {target['refId']}", expr))
        for variable in data["templating"]["list"][1:]:
            metric, label = variable["query"][len("label_values(") : -1].split(", ")
            found.append(
                (f"{stem} / ${variable['name']}", f'group by ({label}) ({metric}{{{label}!=""}})')
            )
    return found


def rule_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every recording rule and every alert's unthresholded signal."""
    found = [(f"record {rule.record}", rule.expr) for rule in recording_rules()]
    for alert in alert_rules(Settings()):
        found += [(f"alert {alert.name} input {i}", q) for i, q in enumerate(alert.inputs)]
    return found


def test_every_panel_query_and_rule_expression_returns_data(stack: Stack) -> None:
    queries = dict(dashboard_queries() + rule_queries())
    pending = dict(queries)

    def all_answered() -> bool:
        for where, expr in list(pending.items()):
            if stack.query(expr):
                del pending[where]
        return not pending

    started = time.monotonic()
    try:
        wait_for(all_answered, timeout=300, interval=3, message="every query returns data")
    except AssertionError:
        empty = "\n".join(f"  {w}: {e}" for w, e in pending.items())
        raise AssertionError(
            f"{len(pending)} of {len(queries)} queries still empty after 300 s:\n{empty}\n"
            f"{stack.logs()}"
        ) from None
    print(
        f"\n{len(queries)} queries answered {time.monotonic() - started:.0f} s after a "
        f"{stack.setup_seconds:.0f} s setup"
    )

    groups = stack.api("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    slo_groups = yaml.safe_load(render_slo_rules(Settings()))["groups"]
    slo_rules = sum(len(group["rules"]) for group in slo_groups)
    assert len(rules) == len(recording_rules()) + len(alert_rules(Settings())) + slo_rules
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    # Both exporters are scraped, so the exporter alert is silent. (The threshold alerts
    # may be pending here: on a loaded machine a fresh cluster can really lag by a second.)
    active = {a["labels"]["alertname"] for a in stack.api("/api/v1/alerts")["alerts"]}
    assert "CqrsExporterDown" not in active, active


def lag_alerts(stack: Stack) -> dict[str, str]:
    """target_datacenter -> state of each active CqrsReplicationLagHigh alert."""
    return {
        a["labels"]["target_datacenter"]: a["state"]
        for a in stack.api("/api/v1/alerts")["alerts"]
        if a["labels"]["alertname"] == ALERT
    }


@dataclass(frozen=True)
class AlertTimings:
    """Seconds from pausing the node to the alert's states, and from resuming to its end."""

    pending: float
    firing: float
    cleared: float


def pause_until_firing(stack: Stack, cluster: Any, datacenter: str = PAUSED) -> AlertTimings:
    """Pause a read datacenter's node until the lag alert fires, resume it, wait for clear."""
    wait_for(
        lambda: datacenter not in lag_alerts(stack),
        timeout=180,
        message=f"no {ALERT} for {datacenter} before the pause",
    )
    paused_at = time.monotonic()
    cluster.pause(datacenter)
    pending_at = firing_at = None
    try:

        def observe() -> bool:
            nonlocal pending_at, firing_at
            state = lag_alerts(stack).get(datacenter)
            now = time.monotonic()
            if state == "pending" and pending_at is None:
                pending_at = now
            if state == "firing":
                firing_at = now
            return firing_at is not None

        wait_for(observe, timeout=120, interval=0.25, message=f"{ALERT} firing for {datacenter}")
        alerts = lag_alerts(stack)
        assert alerts.get(datacenter) == "firing"
        assert all(state != "firing" for dc, state in alerts.items() if dc != datacenter), alerts
    finally:
        cluster.resume(datacenter)
    resumed_at = time.monotonic()
    wait_for(
        lambda: datacenter not in lag_alerts(stack),
        timeout=120,
        interval=0.5,
        message=f"{ALERT} cleared after resuming {datacenter}",
    )
    assert pending_at is not None, "the alert went to firing without being seen pending"
    assert firing_at is not None
    return AlertTimings(
        pending_at - paused_at, firing_at - paused_at, time.monotonic() - resumed_at
    )


@pytest.mark.fault
def test_pausing_a_read_datacenter_fires_replication_lag_and_resuming_clears_it(
    stack: Stack, healthy_testbed: Any
) -> None:
    timings = pause_until_firing(stack, healthy_testbed)
    # It was pending for at least its `for:` (10 s), give or take one evaluation.
    assert timings.firing - timings.pending >= 9.0, timings
    print(
        f"\npause -> pending {timings.pending:.1f} s, pause -> firing {timings.firing:.1f} s "
        f"(for: {TEST_FOR}), resume -> cleared {timings.cleared:.1f} s"
    )


SLO_ALERT = "CqrsSloBurnRate1h"


def slo_alerts(stack: Stack) -> dict[str, str]:
    """component -> state of each active fast-burn alert of the replication-lag SLO."""
    return {
        a["labels"]["component"]: a["state"]
        for a in stack.api("/api/v1/alerts")["alerts"]
        if a["labels"]["alertname"] == SLO_ALERT and a["labels"].get("slo") == "replication_lag"
    }


def budget_remaining(stack: Stack, dc: str) -> float | None:
    found = stack.query(f'{BUDGET_REMAINING}{{slo="replication_lag", component="{dc}"}}')
    return float(found[0]["value"][1]) if found else None


@pytest.mark.fault
def test_a_partition_burns_the_replication_budget_and_fires_the_fast_burn_alert(
    stack: Stack, healthy_testbed: Any
) -> None:
    """With the SLO windows divided by 30 (1 h and 5 min: 2 min and 10 s), cutting
    replication into eu-west burns its budget and pages within the short window."""
    wait_for(
        lambda: PAUSED not in slo_alerts(stack) and budget_remaining(stack, PAUSED) is not None,
        timeout=120,
        message=f"no {SLO_ALERT} for {PAUSED} before the partition, and a budget",
    )
    before = budget_remaining(stack, PAUSED)
    assert before is not None
    cut_at = time.monotonic()
    healthy_testbed.partition(PAUSED)
    try:
        wait_for(
            lambda: slo_alerts(stack).get(PAUSED) == "firing",
            timeout=60,
            message=f"{SLO_ALERT} firing for {PAUSED}",
        )
        fired_in = time.monotonic() - cut_at
        burned = wait_for(
            lambda: (b := budget_remaining(stack, PAUSED)) is not None and b < before - 0.5 and b,
            timeout=60,
            message=f"{PAUSED}'s replication budget burning",
        )
        others = {dc: state for dc, state in slo_alerts(stack).items() if dc != PAUSED}
    finally:
        healthy_testbed.heal(PAUSED)
    assert "firing" not in others.values(), others
    # Within the scaled short window (10 s), plus a scrape (4 s) and the evaluations.
    assert fired_in <= 40, fired_in
    print(f"\n{SLO_ALERT} fired {fired_in:.1f} s after the cut; {PAUSED}'s budget remaining "
          f"{before:.2f} -> {burned:.2f}")
