"""The rule files under promtool: they load, their unit tests pass, and the tests have teeth.

The `alerts/tests/*.yaml` cases check each alert above, at and below its threshold, after its
`for`, with missing series and across counter resets. The mutation tests below break the
rules in the ways alert maths is known to break (a quantile without rate(), a raw counter, a
point estimate instead of an interval, `>=` for `>`...) and require the cases to notice.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.generate.rules import alert_rules
from exporter.generate.settings import Settings
from exporter.generate.slo_rules import BURN_ALERTS

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = "/usr/bin/promtool"
RULE_FILES = [
    REPO / "alerts" / "cqrs-exporter.rules.yaml",
    REPO / "helm" / "cqrs-exporter" / "files" / "rules" / "cqrs-exporter.rules.yaml",
]
TEST_FILES = sorted((REPO / "alerts" / "tests").glob("*.yaml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_promtool_check_rules_accepts_the_rule_files(path: Path) -> None:
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 16 rules found" in result.stdout


def test_promtool_test_rules_passes() -> None:
    result = promtool("test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_every_alert_has_cases_that_fire_and_cases_that_stay_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for item in case.get("alert_rule_test", []):
                (firing if item["exp_alerts"] else silent).add(item["alertname"])
    names = {rule.name for rule in alert_rules(Settings())}
    names |= {burn.name for burn in BURN_ALERTS}
    assert firing == names
    assert silent == names


# name: (text in the rule file, what it becomes, the case that must fail, its test file)
MUTATIONS = {
    "p99 of cumulative buckets (no rate)": (
        "(rate(cqrs_query_duration_seconds_bucket[5m]))",
        "(cqrs_query_duration_seconds_bucket)",
        "query p99 follows the recent window",
        "latency",
    ),
    "lost sentinels on the raw counter": (
        "sum by (source_datacenter, target_datacenter) "
        "(increase(cqrs_replication_sentinels_lost_total[10m])) > 0",
        "cqrs_replication_sentinels_lost_total > 0",
        "a counter reset of lost sentinels does not fire",
        "replication",
    ),
    "replication lag at or above instead of above": (
        "(cqrs_replication_lag_seconds) > 1",
        "(cqrs_replication_lag_seconds) >= 1",
        "lag just below or at 1s never fires",
        "replication",
    ),
    "sync failures judged on the point estimate": (
        "read_model:cqrs_sync_failure_ratio:wilson_lower15m > 0.001",
        "read_model:cqrs_sync_failure_ratio:ratio15m > 0.001",
        "a failure rate above 0.1% on too few checks does not fire",
        "read_models",
    ),
    "sync failures judged without enough checks": (
        "read_model:cqrs_sync_checks:increase15m >= 200",
        "read_model:cqrs_sync_checks:increase15m >= 0",
        "a failure rate is judged only from 200 checks or 5 failures",
        "read_models",
    ),
    "query p99 judged without enough samples": (
        "cassandra_datacenter_query:cqrs_query_duration_seconds_count:increase5m >= 100",
        "cassandra_datacenter_query:cqrs_query_duration_seconds_count:increase5m >= 0",
        "a slow p99 on too few samples does not fire",
        "latency",
    ),
    "exporter down without absent()": (
        "absent(cqrs_exporter_build_info)\n      or\n",
        "",
        "no exporter at all fires after 5m",
        "exporter",
    ),
    "probe failures per reason instead of summed": (
        "sum without (reason) (rate(cqrs_probe_failures_total[5m]))\n      /\n"
        "      rate(cqrs_probe_runs_total[5m])",
        "rate(cqrs_probe_failures_total[5m])\n      / ignoring (reason) group_left\n"
        "      rate(cqrs_probe_runs_total[5m])",
        "failures of all reasons count together",
        "exporter",
    ),
    "sync ratio from unrated counters": (
        "sum by (read_model) (increase(cqrs_sync_failures_total[15m]))",
        "sum by (read_model) (cqrs_sync_failures_total)",
        "counter resets keep the sync failure ratio right",
        "read_models",
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_the_cases_catch_a_broken_rule(tmp_path: Path, mutation: str) -> None:
    original, broken, failing_case, test_file = MUTATIONS[mutation]
    text = RULE_FILES[0].read_text()
    assert text.count(original) == 1, f"mutation target not found: {original!r}"
    (tmp_path / RULE_FILES[0].name).write_text(text.replace(original, broken))
    assert promtool("check", "rules", tmp_path / RULE_FILES[0].name).returncode == 0
    shutil.copytree(REPO / "alerts" / "tests", tmp_path / "tests")

    result = promtool("test", "rules", tmp_path / "tests" / f"{test_file}.test.yaml")

    assert result.returncode != 0, f"no case noticed: {mutation}"
    assert failing_case in result.stdout + result.stderr
