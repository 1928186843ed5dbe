"""The `health:` section: defaults, and one clear error line per mistake, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import ConfigError
from exporter.config.health import Severity
from exporter.results import Check
from tests.health_support import health_config


def errors_of(health: dict[str, Any], **extra: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        health_config({"health": health, **extra})
    return caught.value.errors


def test_defaults_follow_the_pattern() -> None:
    health = health_config().health
    assert (health.raise_after, health.clear_after, health.evaluation_interval) == (3, 3, 0.25)
    assert health.severities.of(Check.WRITE_PATH) is Severity.DOWN
    assert health.severities.of(Check.READ_MODEL_SYNC_LAG) is Severity.DOWN
    for check in (
        Check.REPLICATION_LAG,
        Check.COMMAND_LATENCY_P99,
        Check.QUERY_LATENCY_P99,
        Check.SYNC_FAILURE_RATE,
    ):
        assert health.severities.of(check) is Severity.DEGRADED
    codes = {s: health.http_status.of(s) for s in ("UP", "DEGRADED", "DOWN", "UNKNOWN")}
    assert codes == {"UP": 200, "DEGRADED": 200, "DOWN": 503, "UNKNOWN": 200}
    assert health.groups == {}


def test_a_valid_group_with_its_own_codes() -> None:
    health = health_config(
        {
            "health": {
                "groups": {
                    "reads-ca-central": {
                        "checks": [
                            "replication_lag/ca-central",
                            "read_model_sync_lag/orders_by_customer",
                            "query_latency_p99",
                        ],
                        "http_status": {"DEGRADED": 503},
                    }
                }
            }
        }
    ).health
    group = health.groups["reads-ca-central"]
    assert [str(m) for m in group.checks] == [
        "replication_lag/ca-central",
        "read_model_sync_lag/orders_by_customer",
        "query_latency_p99",
    ]
    assert group.http_code("DEGRADED", health.http_status) == 503
    assert group.http_code("DOWN", health.http_status) == 503
    assert group.http_code("UP", health.http_status) == 200


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (
            {"groups": {"g": {"checks": ["replication_lag/us-west"]}}},
            "health.groups.g.checks[0]: replication_lag has no component 'us-west'; "
            "known: ca-central, eu-west",
        ),
        (
            {"groups": {"g": {"checks": ["write_path", "replication_lag/us-east"]}}},
            "health.groups.g.checks[1]: replication_lag has no component 'us-east'; "
            "known: ca-central, eu-west",
        ),
        (
            {"groups": {"g": {"checks": ["read_model_sync_lag/nope"]}}},
            "health.groups.g.checks[0]: read_model_sync_lag has no component 'nope'; "
            "known: orders_by_customer, order_totals",
        ),
        (
            # A checkpoint read model counts no checks, so it has no failure rate.
            {"groups": {"g": {"checks": ["sync_failure_rate/orders_by_customer"]}}},
            "health.groups.g.checks[0]: sync_failure_rate has no component "
            "'orders_by_customer'; known: order_totals",
        ),
        (
            {"groups": {"g": {"checks": ["replication_lagg"]}}},
            "health.groups.g.checks[0]: unknown check 'replication_lagg'; known checks: "
            "write_path, replication_lag, read_model_sync_lag, command_latency_p99, "
            "query_latency_p99, sync_failure_rate",
        ),
        (
            {"groups": {"g": {"checks": ["write_path/"]}}},
            "health.groups.g.checks[0]: 'write_path/' names no component after '/'",
        ),
        (
            {"groups": {"g": {"checks": []}}},
            "health.groups.g.checks: list should have at least 1 item after validation, not 0",
        ),
        (
            {"groups": {"g": {"checks": ["write_path", "write_path"]}}},
            "health.groups.g.checks: listed more than once: write_path",
        ),
        (
            {"groups": {"live": {"checks": ["write_path"]}}},
            "health.groups.live: group name 'live' is reserved for /health/live",
        ),
        (
            {"groups": {"a/b": {"checks": ["write_path"]}}},
            "health.groups.a/b: group name 'a/b' must start with a letter or digit and use "
            "only letters, digits, '_', '.' and '-' (at most 64)",
        ),
        (
            {"groups": {"g": {"checks": ["write_path"], "http_status": {"DWN": 503}}}},
            "health.groups.g.http_status.DWN: unknown key",
        ),
        ({"severities": {"write_path": "UP"}},
         "health.severities.write_path: input should be 'DOWN' or 'DEGRADED'"),
        ({"severities": {"replication": "DOWN"}}, "health.severities.replication: unknown key"),
        ({"http_status": {"DOWN": 999}},
         "health.http_status.DOWN: input should be less than or equal to 599"),
        ({"raise_after": 0}, "health.raise_after: input should be greater than or equal to 1"),
        ({"clear_after": "x"},
         "health.clear_after: input should be a valid integer, unable to parse string as an "
         "integer, got 'x'"),
        ({"evaluation_interval": 1},
         "health.evaluation_interval: expected a duration with a unit such as 250ms, 1s or 5m, "
         "got 1"),
    ],
)
def test_a_bad_health_section_is_one_clear_line(health: dict[str, Any], expected: str) -> None:
    assert errors_of(health) == [expected]


def test_severities_are_case_insensitive() -> None:
    health = health_config({"health": {"severities": {"replication_lag": "down"}}}).health
    assert health.severities.of(Check.REPLICATION_LAG) is Severity.DOWN


def test_check_config_reports_a_bad_group_without_a_traceback(tmp_path: Path) -> None:
    config = health_config().model_dump(mode="json", exclude_defaults=True)
    config["health"] = {"groups": {"reads": {"checks": ["replication_lag/mars"]}}}
    path = tmp_path / "cqrs.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        "health.groups.reads.checks[0]: replication_lag has no component 'mars'; "
        "known: ca-central, eu-west"
    ) in result.stderr.splitlines()
