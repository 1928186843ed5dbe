"""`cqrs-exporter generate`: one source of thresholds, deterministic files, a drift check."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main
from exporter.config import Thresholds, parse_config
from exporter.generate import GENERATED_DIRS, check, generate, render
from exporter.generate.dashboards import DASHBOARDS
from exporter.generate.rules import alert_rules
from exporter.generate.settings import DEFAULT_RUNBOOK_URL, Settings
from exporter.health import threshold_for
from exporter.results import Check

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "alerts" / "cqrs-exporter.rules.yaml"

# Each thresholded check: its alert, and the metric its dashboard panels draw it on.
THRESHOLDED = {
    Check.REPLICATION_LAG: ("CqrsReplicationLagHigh", "cqrs_replication_lag_seconds"),
    Check.READ_MODEL_SYNC_LAG: ("CqrsReadModelSyncLagHigh", "cqrs_read_model_sync_lag_seconds"),
    Check.QUERY_LATENCY_P99: ("CqrsQueryLatencyP99High", "cqrs_query_duration_seconds_bucket"),
    Check.COMMAND_LATENCY_P99: (
        "CqrsCommandLatencyP99High",
        "cqrs_command_duration_seconds_bucket",
    ),
    Check.SYNC_FAILURE_RATE: ("CqrsSyncFailureRateHigh", "cqrs_sync_failure_ratio"),
}

CUSTOM = {
    "cluster": {"contact_points": ["127.0.0.1"]},
    "datacenters": {"write": "us-east", "read": ["eu-west"]},
    "thresholds": {
        "replication_lag": "2500ms",
        "read_model_sync_lag": "30s",
        "query_latency_p99": "20ms",
        "command_latency_p99": "250ms",
        "sync_failure_rate": "0.5%",
    },
    "health": {"severities": {"replication_lag": "DOWN", "read_model_sync_lag": "DEGRADED"}},
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `cqrs-exporter generate ARGS` in this process (the repository is the default root)."""
    if "--output" not in args:
        args = (*args, "--output", str(REPO))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["generate", *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def rules_of(text: str) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def threshold_values(panel: dict[str, Any]) -> list[float]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in steps if s["value"] is not None and s["color"] == "red"]


def test_committed_files_match_the_default_thresholds() -> None:
    """The CI drift check: what is committed is what `generate` writes."""
    assert check(None, REPO) == []


def test_generate_check_exits_0_on_the_repository() -> None:
    result = cli("--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_generate_check_names_each_drifted_file_and_exits_1(tmp_path: Path) -> None:
    assert cli("--output", str(tmp_path)).returncode == 0
    edited = tmp_path / "dashboards" / "cqrs-overview.json"
    edited.write_text(edited.read_text().replace('"s"', '"ms"', 1))
    (tmp_path / "helm/cqrs-exporter/files/rules/cqrs-exporter.rules.yaml").unlink()
    (tmp_path / "alerts" / "hand-written.yaml").write_text("groups: []\n")

    result = cli("--check", "--output", str(tmp_path))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"{edited}: differs" in lines
    assert f"{tmp_path}/helm/cqrs-exporter/files/rules/cqrs-exporter.rules.yaml: missing" in lines
    assert f"{tmp_path}/alerts/hand-written.yaml: not generated" in lines
    assert "Traceback" not in result.stderr


def test_generate_repairs_drift_and_removes_stale_files(tmp_path: Path) -> None:
    generate(None, tmp_path)
    (tmp_path / "dashboards" / "old-name.json").write_text("{}")
    (tmp_path / "alerts" / "cqrs-exporter.rules.yaml").write_text("groups: []\n")
    # A test directory under alerts/ is not generated and must survive.
    (tmp_path / "alerts" / "tests").mkdir()
    (tmp_path / "alerts" / "tests" / "case.yaml").write_text("tests: []\n")

    generate(None, tmp_path)

    assert check(None, tmp_path) == []
    assert not (tmp_path / "dashboards" / "old-name.json").exists()
    assert (tmp_path / "alerts" / "tests" / "case.yaml").exists()


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    generate(None, first)
    generate(None, second)
    for path in sorted(first.rglob("*.*")):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path
    assert render(Settings()) == render(Settings())


def test_dashboards_are_json_with_sorted_keys_and_a_trailing_newline() -> None:
    for path in sorted((REPO / "dashboards").glob("*.json")):
        text = path.read_text()
        assert text.endswith("}\n")
        canonical = json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False)
        assert canonical + "\n" == text


def test_helm_chart_gets_identical_copies() -> None:
    top, chart = (REPO / d for d in GENERATED_DIRS["dashboards"])
    names = sorted(p.name for p in top.glob("*.json"))
    assert (
        names
        == sorted(p.name for p in chart.glob("*.json"))
        == sorted(f"{stem}.json" for stem in DASHBOARDS)
    )
    for name in names:
        assert (top / name).read_bytes() == (chart / name).read_bytes()
    alerts, rules = (REPO / d for d in GENERATED_DIRS["rules"])
    assert (alerts / RULES.name).read_bytes() == (rules / RULES.name).read_bytes()


def test_rule_file_is_a_prometheusrule_body() -> None:
    body = yaml.safe_load(RULES.read_text())
    assert set(body) == {"groups"}
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cqrs-exporter"},
        "spec": body,
    }
    again = yaml.safe_load(yaml.safe_dump(manifest))
    assert again["spec"] == body
    for group in body["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]


def test_every_alert_has_severity_summary_description_runbook_and_for() -> None:
    rules = rules_of(RULES.read_text())
    assert set(rules) == {
        "CqrsReplicationLagHigh",
        "CqrsReadModelSyncLagHigh",
        "CqrsQueryLatencyP99High",
        "CqrsCommandLatencyP99High",
        "CqrsSyncFailureRateHigh",
        "CqrsReplicationSentinelsLost",
        "CqrsProbeFailing",
        "CqrsExporterDown",
    }
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        if name != "CqrsExporterDown":  # its value is `up`, not a measurement worth quoting
            assert "$value" in rule["annotations"]["description"], name
        assert "threshold" in rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+m", rule["for"]), name
        assert rule["annotations"]["runbook_url"] == f"{DEFAULT_RUNBOOK_URL}#{name.lower()}"


def github_anchors(markdown: str) -> set[str]:
    """Heading ids as GitHub makes them: lowercased, punctuation dropped, spaces to dashes."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_every_runbook_url_points_at_a_section_of_docs_runbooks() -> None:
    anchors = github_anchors((REPO / "docs" / "runbooks.md").read_text())
    for name, rule in rules_of(RULES.read_text()).items():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in anchors, f"{name}: no section #{anchor} in docs/runbooks.md"


def test_runbook_base_url_is_configurable(tmp_path: Path) -> None:
    result = cli("--output", str(tmp_path), "--runbook-url", "https://wiki.example/cqrs")
    assert result.returncode == 0, result.stderr
    rules = rules_of((tmp_path / "alerts" / RULES.name).read_text())
    assert rules["CqrsExporterDown"]["annotations"]["runbook_url"] == (
        "https://wiki.example/cqrs#cqrsexporterdown"
    )
    # The repository's files are generated with the default URL, so --check against them
    # with another URL reports drift.
    assert cli("--check", "--runbook-url", "https://wiki.example/cqrs").returncode == 1


@pytest.mark.parametrize(
    ("check_", "attribute"),
    [(c, c.value) for c in THRESHOLDED],
    ids=[c.value for c in THRESHOLDED],
)
def test_one_threshold_in_health_alert_expr_description_and_dashboard(
    tmp_path: Path, check_: Check, attribute: str
) -> None:
    """The same configured number reaches /health, the alert and the dashboards' red lines."""
    config = parse_config(CUSTOM)
    alert, metric = THRESHOLDED[check_]
    value = getattr(config.thresholds, attribute)
    assert value != getattr(Thresholds(), attribute)  # the test uses non-default numbers
    assert threshold_for(check_, config) == value  # what /health compares with

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CUSTOM))
    result = cli("--config", str(path), "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr

    rule = rules_of((tmp_path / "alerts" / RULES.name).read_text())[alert]
    settings = Settings.from_config(config)
    number = {
        Check.REPLICATION_LAG: ("> 2.5", "threshold 2.5s"),
        Check.READ_MODEL_SYNC_LAG: ("> 30", "threshold 30s"),
        Check.QUERY_LATENCY_P99: ("> 0.02", "threshold 20ms"),
        Check.COMMAND_LATENCY_P99: ("> 0.25", "threshold 250ms"),
        Check.SYNC_FAILURE_RATE: ("> 0.005", "0.5% threshold"),
    }[check_]
    assert number[0] in rule["expr"]
    assert number[1] in rule["annotations"]["description"]
    assert rule["labels"]["severity"] == settings.severity(check_)

    drawn = []
    for dashboard_path in sorted((tmp_path / "dashboards").glob("*.json")):
        for panel in panels(json.loads(dashboard_path.read_text())):
            exprs = " ".join(t["expr"] for t in panel["targets"])
            if re.search(rf"\b{metric}\b", exprs) and threshold_values(panel):
                assert threshold_values(panel) == [value], (dashboard_path.name, panel["title"])
                drawn.append(panel["title"])
    assert drawn, f"no dashboard draws the {attribute} threshold"


def test_alert_severities_follow_the_health_severities() -> None:
    config = parse_config(CUSTOM)
    rules = {r.name: r for r in alert_rules(Settings.from_config(config))}
    assert rules["CqrsReplicationLagHigh"].severity == "critical"  # DOWN in this config
    assert rules["CqrsReadModelSyncLagHigh"].severity == "warning"  # DEGRADED in this config
    defaults = {r.name: r for r in alert_rules(Settings())}
    assert defaults["CqrsReplicationLagHigh"].severity == "warning"
    assert defaults["CqrsReadModelSyncLagHigh"].severity == "critical"


def test_generate_with_a_bad_config_names_the_key_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CUSTOM, "thresholds": {"replication_lag": "fast"}}))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "generate",
            "--config",
            str(path),
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "thresholds.replication_lag:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dashboards").exists()


def test_for_overrides_change_only_the_named_alert() -> None:
    settings = Settings(for_overrides={"CqrsReplicationLagHigh": "10s"})
    rules = {r["alert"]: r for r in (r.to_dict(settings) for r in alert_rules(settings))}
    assert rules["CqrsReplicationLagHigh"]["for"] == "10s"
    assert rules["CqrsReadModelSyncLagHigh"]["for"] == "2m"


def test_generate_writes_into_an_empty_checkout(tmp_path: Path) -> None:
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    written = generate(None, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        str(p) for p in render(Settings())
    )


def test_generate_into_an_unwritable_place_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = cli("--output", str(blocker))
    assert result.returncode == 1
    assert f"{blocker}/dashboards: cannot write" in result.stderr
