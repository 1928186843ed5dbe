"""The status page: what it shows of each check, group and probe, escaped, and never secrets."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from exporter import DOCS_URL
from exporter.config import Config
from exporter.health.history import HealthHistory
from exporter.health.monitor import HealthMonitor
from exporter.results import Check, FailureReason, Observation, ProbeOutcome
from exporter.scheduler import ProbeRunState
from exporter.status.page import gather, render
from tests.health_support import Harness, health_config
from tests.support import poll_until, serve_exporter

NASTY = '<img src=x onerror="alert(1)">&\'dc'
LIVE = {"probe_scheduler": True, "health_evaluation": True}
READY = {"config_loaded": True, "session_established": True, "first_probe_round_done": False}


def document(page: str) -> ET.Element:
    """The page parsed as XML: it is written well-formed, so a stray `<` or `&` fails here."""
    assert page.startswith("<!doctype html>")
    return ET.fromstring(page.removeprefix("<!doctype html>"))


def text_of(element: ET.Element) -> str:
    return " ".join(" ".join(element.itertext()).split())


class Page:
    """A monitor fed by fake probes, and the page rendered from it."""

    def __init__(self, config: Config | None = None) -> None:
        self.harness = Harness(config)
        self.monitor = HealthMonitor(
            self.harness.evaluator,
            lambda: [p.reading() for p in self.harness.probes.values()],
            1.0,
        )
        self.states: dict[str, ProbeRunState] = {}

    def feed(self, probe: str, *observations: Observation, times: int = 1) -> None:
        for _ in range(times):
            self.harness.probe(probe).report(*observations)
            self.harness.clock.advance(1.0)
            self.monitor.evaluate_now()

    def render(self) -> str:
        state = gather(
            self.harness.config,
            self.monitor.snapshot,
            self.monitor.history,
            self.states,
            LIVE,
            READY,
            self.harness.clock,
        )
        return render(state)


def table(root: ET.Element, section: str) -> ET.Element:
    found = root.find(f".//section[@id='{section}']/table")
    assert found is not None, section
    return found


def rows(root: ET.Element) -> dict[str, list[str]]:
    """The checks table: `check/component` -> the text of each cell of its row."""
    found: dict[str, list[str]] = {}
    check = ""
    for body in table(root, "checks").iter("tbody"):
        for row in body.iter("tr"):
            if row.get("class") == "check":
                check = text_of(row).split()[0]
                continue
            cells = list(row)
            if len(cells) == 6:
                found[f"{check}/{text_of(cells[0])}"] = [text_of(c) for c in cells]
    return found


def healthy_page() -> Page:
    page = Page(
        health_config(
            {"health": {"groups": {"reads-eu-west": {"checks": ["replication_lag/eu-west"]}}}}
        )
    )
    page.feed(
        "replication",
        Observation(Check.WRITE_PATH, "us-east", 1.0),
        Observation(Check.REPLICATION_LAG, "eu-west", 2.5),
        Observation(Check.REPLICATION_LAG, "ca-central", 0.4),
        times=4,
    )
    page.feed(
        "latency",
        Observation(Check.QUERY_LATENCY_P99, "eu-west", 0.0123, samples=400),
        Observation(Check.COMMAND_LATENCY_P99, "us-east", 0.0042, samples=400),
    )
    page.feed(
        "read_models",
        Observation(Check.SYNC_FAILURE_RATE, "order_totals", 0.002, compared=0.0004, samples=50),
    )
    return page


def test_every_check_and_component_with_its_value_threshold_and_state() -> None:
    root = document(healthy_page().render())
    found = rows(root)
    assert found["replication_lag/eu-west"][1:4] == ["DEGRADED", "2.5 s", "≤ 1 s"]
    assert found["replication_lag/ca-central"][1:4] == ["UP", "0.4 s", "≤ 1 s"]
    assert found["write_path/us-east"][1:4] == ["UP", "available", "available"]
    assert found["query_latency_p99/eu-west"][1:4] == ["UP", "12.3 ms 400 samples", "≤ 50 ms"]
    assert found["command_latency_p99/us-east"][2:4] == ["4.2 ms 400 samples", "≤ 100 ms"]
    assert found["sync_failure_rate/order_totals"][2:4] == [
        "0.2 % judged on 0.04 %, 50 samples",
        "≤ 0.1 %",
    ]
    # A check no probe reports is listed, and says so.
    checks = text_of(table(root, "checks"))
    assert "read_model_sync_lag UNKNOWN" in checks and "no component reported" in checks


def test_the_overall_verdict_comes_first_and_states_are_words_not_only_colours() -> None:
    root = document(healthy_page().render())
    verdict = root.find(".//div[@class='verdict']")
    assert verdict is not None and "Overall DEGRADED" in text_of(verdict)
    title = root.findtext("head/title")
    assert title is not None and title.startswith("DEGRADED")
    for badge in root.iter("span"):
        if "state" in (badge.get("class") or "").split():
            assert badge.text in {"UP", "DEGRADED", "DOWN", "UNKNOWN"}
            assert badge.get("class") == f"state {badge.text}"


def test_one_sparkline_per_component_each_with_a_threshold_line() -> None:
    root = document(healthy_page().render())
    svgs = list(root.iter("svg"))
    assert len(svgs) == len(rows(root)) == 6
    for svg in svgs:
        assert [e.get("class") for e in svg.iter("line")] == ["threshold"]
        assert svg.get("aria-label")


def test_groups_are_listed_with_their_state_and_members() -> None:
    root = document(healthy_page().render())
    groups = table(root, "groups")
    assert "reads-eu-west DEGRADED" in text_of(groups)
    assert "replication_lag/eu-west" in text_of(groups)
    links = [a.get("href") for a in groups.iter("a")]
    assert links == ["/health/reads-eu-west"]


def test_the_page_links_the_endpoints_and_the_docs() -> None:
    root = document(healthy_page().render())
    links = {a.get("href") for a in root.iter("a")}
    assert {"/metrics", "/health", "/health?verbose", "/health/live", "/health/ready"} <= links
    assert DOCS_URL in links and f"{DOCS_URL}/runbooks.md" in links
    assert root.find("head/meta[@http-equiv='refresh']") is not None
    assert not list(root.iter("script")) and not list(root.iter("link"))


def test_probe_runs_show_time_duration_and_the_bounded_reason() -> None:
    page = healthy_page()
    now = page.harness.clock.time()
    failed = ProbeRunState(
        runs=7,
        last_outcome=ProbeOutcome.failed(FailureReason.TIMEOUT, "no result within 2 s"),
        last_duration=2.0,
        last_run_time=now - 3,
        last_success_time=now - 125,
        last_failure_time=now - 3,
        last_failure_reason=FailureReason.TIMEOUT,
    )
    failed.failures[FailureReason.TIMEOUT] = 2
    ok = ProbeRunState(
        runs=3,
        last_outcome=ProbeOutcome.ok(),
        last_duration=0.0125,
        last_run_time=now - 1,
        last_success_time=now - 1,
    )
    page.states = {"latency": failed, "replication": ok, "reachability": ProbeRunState()}
    probes = table(document(page.render()), "probes").iter("tr")
    cells = {text_of(r[0]): [text_of(c) for c in r] for r in probes if r[0].get("scope") == "row"}
    assert cells["latency"][1:] == [
        "3 s ago",
        "2 s",
        "failed: timeout",
        "2 min ago",
        "timeout, 3 s ago",
        "7 / 2 / 0",
    ]
    assert cells["replication"][1:] == [
        "1 s ago",
        "12.5 ms",
        "succeeded",
        "1 s ago",
        "none",
        "3 / 0 / 0",
    ]
    assert cells["reachability"][1:] == ["not run yet", "none yet", "never", "none", "0 / 0 / 0"]


def test_every_configured_name_is_escaped() -> None:
    # The config refuses such a name; the page escapes it all the same (built unvalidated).
    valid = health_config({"datacenters": {"write": "us-east", "read": ["ca-central"]}})
    datacenters = valid.datacenters.model_copy(update={"write": NASTY})
    config = valid.model_copy(update={"datacenters": datacenters})
    page = Page(config)
    page.feed(
        "probe",
        Observation(Check.WRITE_PATH, NASTY, 1.0),
        Observation(Check.READ_MODEL_SYNC_LAG, f"model {NASTY}", 0.5),
    )
    page.states = {f"read_model:{NASTY}": ProbeRunState()}
    text = page.render()
    assert "<img" not in text and 'onerror="' not in text
    root = document(text)  # well-formed: nothing unescaped broke the markup
    assert f"write_path/{NASTY}" in rows(root)
    assert f"read_model_sync_lag/model {NASTY}" in rows(root)
    verdict = root.find(".//div[@class='verdict']")
    assert verdict is not None and NASTY in text_of(verdict)
    assert any(f"read_model:{NASTY}" == text_of(th) for th in root.iter("th"))


def test_no_host_name_user_name_secret_or_failure_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CQRS_TEST_STATUS_PASSWORD", "pw-0f1e2d3c")
    config = health_config(
        {
            "cluster": {
                "contact_points": ["cass-7.db.internal.example", "10.20.30.40"],
                "auth": {
                    "username": "svc_status",
                    "password": {"env": "CQRS_TEST_STATUS_PASSWORD"},
                },
            }
        }
    )
    page = Page(config)
    page.feed("replication", Observation(Check.REPLICATION_LAG, "eu-west", 3.0), times=4)
    detail = (
        "NoHostAvailable: ('Unable to complete the operation against any hosts', "
        "{<Host: cass-7.db.internal.example:9042 us-east>: OperationTimedOut('errors=..., "
        "last_host=10.20.30.40:9042 user svc_status')})"
    )
    failed: dict[str, Any] = {
        "last_outcome": ProbeOutcome.failed(FailureReason.UNAVAILABLE, detail),
        "last_run_time": page.harness.clock.time(),
        "last_failure_time": page.harness.clock.time(),
        "last_failure_reason": FailureReason.UNAVAILABLE,
        "last_duration": 1.0,
        "runs": 1,
    }
    page.states = {"replication": ProbeRunState(**failed)}
    text = page.render()
    assert "unavailable" in text
    for secret in (
        "cass-7",
        "db.internal",
        "10.20.30.40",
        "9042",
        "svc_status",
        "pw-0f1e2d3c",
        "NoHostAvailable",
        "OperationTimedOut",
        "Unable to complete",
    ):
        assert secret not in text, secret


def test_the_sparkline_label_gives_the_worst_of_the_window_in_the_check_unit() -> None:
    page = Page()
    for value in (0.004, 0.071, 0.006):
        page.feed("latency", Observation(Check.QUERY_LATENCY_P99, "eu-west", value, samples=99))
    (svg,) = document(page.render()).iter("svg")
    assert svg.get("aria-label") == (
        "query_latency_p99 eu-west, last 15 minutes: worst 71 ms, threshold ≤ 50 ms"
    )


def test_a_custom_window_is_named_on_the_page() -> None:
    page = healthy_page()
    page.monitor.history = HealthHistory(window=300, slot=5)
    page.feed("replication", Observation(Check.REPLICATION_LAG, "eu-west", 0.1))
    assert "Last 5 minutes" in page.render()


async def test_the_app_serves_the_page_at_the_root() -> None:
    config: dict[str, Any] = {
        "cluster": {"contact_points": ["127.0.0.1"], "port": 1, "connect_timeout": "1s"},
        "datacenters": {"write": "us-east", "read": ["ca-central"]},
        "probes": {
            "reachability": {"interval": "1s", "timeout": "500ms"},
            "replication": {"enabled": False},
            "latency": {"enabled": False},
        },
    }
    async with serve_exporter(config) as running:
        await poll_until(
            lambda: running.exporter.runner.states["reachability"].runs > 0,
            timeout=30,
            message="a reachability run",
        )
        async with running.http.get(running.url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert response.headers["Cache-Control"] == "no-store"
            page = await response.text()
    root = document(page)
    probes = text_of(table(root, "probes"))
    assert "reachability" in probes and "failed: " in probes
    groups = root.find(".//section[@id='groups']")
    assert groups is not None and "No health groups are configured" in text_of(groups)
    assert "127.0.0.1" not in page
