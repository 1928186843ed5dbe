"""SLOs: the config, the time-slice SLI counters, the freshness windows and /freshness, the
generated SLO rules' windows and the OpenSLO document."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from exporter.clock import FakeClock
from exporter.config import ConfigError
from exporter.generate.openslo import openslo_documents
from exporter.generate.settings import Settings
from exporter.generate.slo_rules import BURN_ALERTS, WINDOWS, slo_rule_groups, window_duration
from exporter.slo.freshness import (
    LOCAL_ADVICE,
    STALE_ADVICE,
    Freshness,
    Progress,
    VisibilitySource,
    VisibilityWindow,
    nearest_rank,
)
from exporter.slo.monitor import SloMonitor
from exporter.slo.slices import SliceCounters
from tests.health_support import Harness, health_config, lag


def test_the_default_objectives_follow_the_issue_and_the_thresholds() -> None:
    config = health_config()
    slo, t = config.slo, config.thresholds
    assert slo.period == 30 * 86400
    assert slo.objective("replication_lag", t) == 0.999
    assert slo.objective("read_model_sync_lag", t) == 0.99
    assert slo.objective("query_latency_p99", t) == 0.995
    assert slo.objective("command_latency_p99", t) == 0.995
    assert slo.objective("sync_failure_rate", t) == pytest.approx(0.999)
    assert slo.freshness.confidences == [0.99, 0.999]
    tighter = health_config({"thresholds": {"sync_failure_rate": "1%"}})
    assert tighter.slo.objective("sync_failure_rate", tighter.thresholds) == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replication_lag": "100%"}, "slo.replication_lag: must be between 0 and 1"),
        ({"period": "30m"}, "slo.period: period (30m) must be at least 1h"),
        (
            {"freshness": {"confidences": [0.99, "99%"]}},
            "slo.freshness.confidences: confidences must be distinct",
        ),
        ({"freshness": {"confidences": []}}, "slo.freshness.confidences: list should have"),
        ({"objective": 0.9}, "slo.objective: unknown key"),
    ],
)
def test_bad_slo_settings_name_their_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        health_config({"slo": overrides})
    assert any(line.lower().startswith(message.lower()) for line in caught.value.errors), (
        caught.value.errors
    )


def test_each_evaluation_is_one_slice_good_within_the_threshold_and_unjudged_ones_do_not_count():
    harness = Harness()
    counters = SliceCounters({"replication_lag": ["ca-central", "eu-west"], "write_path": ["x"]})
    assert counters.total == {
        ("replication_lag", "ca-central"): 0,
        ("replication_lag", "eu-west"): 0,
    }
    for value in (0.2, 0.3, 1.5, None, 0.1):
        counters.record(harness.feed("replication", lag(value)))
    # 0.2, 0.3 and 0.1 good, 1.5 bad; no data counts neither way.
    assert counters.good[("replication_lag", "ca-central")] == 3
    assert counters.total[("replication_lag", "ca-central")] == 4
    assert counters.ratio("replication_lag", "ca-central") == 0.75
    assert counters.ratio("replication_lag", "eu-west") is None
    families = {f.name: f for f in counters.families()}
    good = {tuple(s.labels.values()): s.value for s in families["cqrs_slo_good_slices"].samples}
    assert good[("replication_lag", "ca-central")] == 3
    assert good[("replication_lag", "eu-west")] == 0


def test_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 1001)]
    assert nearest_rank(ordered, 0.999) == 999.0
    assert nearest_rank(ordered, 0.99) == 990.0
    assert nearest_rank(ordered, 1.0) == 1000.0
    assert nearest_rank([0.3], 0.999) == 0.3


def test_the_window_takes_each_sentinel_of_a_batch_at_its_own_value() -> None:
    window = VisibilityWindow(10.0)
    window.update((5, (0.1, 0.2)), now=0.0)  # the baseline: nothing before it is known
    assert window.count(0.0) == 0
    window.update((6, (0.1, 0.2, 0.3)), now=1.0)
    window.update((6, (0.1, 0.2, 0.3)), now=2.0)  # nothing new
    window.update((9, (0.3, 0.9, 0.4, 0.2)), now=3.0)  # three at once
    assert window.count(3.0) == 4
    assert window.quantile(0.5, 3.0) == pytest.approx(0.3)
    assert window.quantile(0.75, 3.0) == pytest.approx(0.4)
    assert window.maximum(3.0) == pytest.approx(0.9)
    assert window.quantile(0.25, 3.0) == pytest.approx(0.2)
    assert window.count(11.5) == 3  # the sample taken at 1.0 is out of the window
    assert window.count(13.5) == 0
    assert window.quantile(0.99, 13.5) is None


def test_an_hour_of_sentinels_every_100_ms_keeps_every_visibility_exactly() -> None:
    """Ten sentinels a second read four times a second: every quantile is a sample's own
    value, and the window forgets what is older than it a slice at a time."""
    rng = random.Random(7)
    window = VisibilityWindow(3600.0)
    visibilities: list[float] = []
    window.update((0, ()), now=0.0)
    now = 0.0
    while now < 3564.0:  # the first slice (0 to 36 s) is still in the window
        now += 0.25
        visibilities += [rng.lognormvariate(-4.0, 0.8) for _ in range(rng.choice((2, 3)))]
        window.update((len(visibilities), tuple(visibilities[-256:])), now=now)
    assert window.count(now) == len(visibilities) > 20_000
    ordered = sorted(visibilities)
    for q in (0.5, 0.99, 0.999, 1.0):
        assert window.quantile(q, now) == nearest_rank(ordered, q)
    assert window.count(now + 1800.0) < len(visibilities) * 0.52


class FakeWriter:
    source = "us-east"

    def __init__(self) -> None:
        self.progress: dict[str, list[float]] = {"ca-central": [], "eu-west": []}
        self.lags: dict[str, float | None] = {"ca-central": 0.01, "eu-west": 0.01}

    def lag(self, dc: str) -> float | None:
        return self.lags[dc]

    def visibility_progress(self) -> Mapping[str, Progress]:
        return {
            dc: (len(seen), tuple(seen[-256:])) for dc, seen in self.progress.items()
        }


def test_the_freshness_report_gives_the_wait_at_each_confidence_and_the_advice() -> None:
    config = health_config({"slo": {"freshness": {"window": "5m", "min_samples": 100}}})
    clock = FakeClock()
    writer = FakeWriter()
    assert isinstance(writer, VisibilitySource)
    monitor = SloMonitor(config, clock, lambda: [writer])
    harness = Harness(config)
    for i in range(200):
        writer.progress["ca-central"].append(0.010 + (i % 10) / 1000)
        writer.progress["eu-west"].append(0.300 + (i % 100) / 1000)
        if i < 120:
            writer.progress["eu-west"].append(0.300)  # two in one evaluation
        clock.advance(1.0)
        monitor.record(harness.tick())
    report = monitor.freshness_report()
    assert report["source_datacenter"] == "us-east"
    assert report["confidences"] == ["0.99", "0.999"]
    eu = report["datacenters"]["eu-west"]
    assert eu["samples"] == 2 * 119 + 80  # after the baseline: two an evaluation, then one
    assert 0.390 <= eu["wait_seconds"]["0.999"] <= 0.399
    assert eu["quantiles_seconds"]["max"] == pytest.approx(0.399)
    assert eu["stale"] is False and eu["advice"] == LOCAL_ADVICE
    ca = report["datacenters"]["ca-central"]
    assert ca["wait_seconds"]["0.99"] == pytest.approx(0.019)

    writer.lags["eu-west"] = 1.5
    eu = monitor.freshness_report()["datacenters"]["eu-west"]
    assert eu["stale"] is True and eu["advice"] == STALE_ADVICE

    families = {f.name: f for f in monitor.collect()}
    waits = {
        (s.labels["target_datacenter"], s.labels["confidence"]): s.value
        for s in families["cqrs_read_your_writes_wait_seconds"].samples
    }
    assert waits[("ca-central", "0.99")] == pytest.approx(0.019)
    stale = {
        s.labels["target_datacenter"]: s.value for s in families["cqrs_freshness_stale"].samples
    }
    assert stale == {"ca-central": 0.0, "eu-west": 1.0}
    objectives = {s.labels["slo"]: s.value for s in families["cqrs_slo_objective"].samples}
    assert objectives["replication_lag"] == 0.999


def test_too_few_samples_give_no_wait_and_send_reads_to_the_write_datacenter() -> None:
    freshness = Freshness(60.0, [0.99], threshold=1.0, min_samples=30)
    freshness.update({"eu-west": (0, ())}, 0.0)
    freshness.update({"eu-west": (1, (0.1,))}, 1.0)
    advice = freshness.advice("eu-west", 0.05, 1.0)
    assert advice.samples == 1 and advice.waits == {"0.99": None}
    assert advice.advice == STALE_ADVICE
    assert freshness.advice("eu-west", None, 1.0).stale  # an unknown lag is not fresh


def test_the_rule_windows_scale_with_the_period_and_the_test_scale() -> None:
    default = Settings()
    assert [window_duration(default, w) for w in WINDOWS] == [
        "5m", "30m", "1h", "2h", "6h", "24h", "72h"
    ]
    assert window_duration(Settings(slo_time_scale=30), "1h") == "2m"
    assert window_duration(Settings(slo_time_scale=30), "5m") == "10s"
    week = Settings(slo=health_config({"slo": {"period": "168h"}}).slo)
    assert window_duration(week, "1h") == "14m"
    groups = slo_rule_groups(default)["groups"]
    alerts = groups[-1]["rules"]
    assert [a["alert"] for a in alerts] == [b.name for b in BURN_ALERTS]
    assert [(a["labels"]["severity"], a["labels"]["long_window"]) for a in alerts] == [
        ("page", "1h"), ("page", "6h"), ("ticket", "24h"), ("ticket", "72h")
    ]
    assert [b.budget_share for b in BURN_ALERTS] == pytest.approx([0.02, 0.05, 0.1, 0.1])


def test_the_openslo_document_has_a_service_and_one_ratio_slo_per_objective() -> None:
    documents = openslo_documents(Settings())
    assert [d["kind"] for d in documents] == ["Service"] + ["SLO"] * 5
    assert all(d["apiVersion"] == "openslo/v1" for d in documents)
    lag_slo = documents[1]["spec"]
    assert lag_slo["objectives"] == [
        {"displayName": "Replication lag to each read datacenter under 1 s", "target": 0.999}
    ]
    ratio = lag_slo["indicator"]["spec"]["ratioMetric"]
    assert ratio["good"]["metricSource"]["spec"]["query"] == (
        'sum(cqrs_slo_good_slices_total{slo="replication_lag"})'
    )
    assert lag_slo["timeWindow"] == [{"duration": "30d", "isRolling": True}]
    assert "bad" in documents[-1]["spec"]["indicator"]["spec"]["ratioMetric"]
    yaml.safe_dump_all(documents)


@pytest.mark.parametrize("scale", [1, 30])
def test_promtool_accepts_the_slo_rules_at_full_and_test_scale(scale: int, tmp_path: Path) -> None:
    import subprocess

    from exporter.generate import render_slo_rules

    path = tmp_path / "slo.rules.yaml"
    path.write_text(render_slo_rules(Settings(slo_time_scale=scale)))
    result = subprocess.run(
        ["/usr/bin/promtool", "check", "rules", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 45 rules found" in result.stdout
