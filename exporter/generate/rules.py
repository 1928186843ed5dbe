"""Prometheus recording rules and alerts, from the same thresholds as /health.

The rule file has a top-level `groups:` list, so it loads into Prometheus as it is and
serves unchanged as the `spec` of a Prometheus Operator PrometheusRule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.settings import Settings, human_percent, promql_number
from exporter.metric_catalogue import MetricSpec
from exporter.results import Check

LATENCY_WINDOW = "5m"
"""The latency rate window: the same five minutes as the exporter's in-process p99 window."""
SYNC_WINDOW = "15m"
"""Sync checks are sparse (a few per second at most); 15 min gathers enough for a verdict."""
Z_95 = 1.96
"""The normal quantile of the 95 % Wilson interval, as the read-model probe uses."""

# Recorded series, named level:metric:operations as Prometheus' naming guide suggests.
_COMMAND = catalogue.COMMAND_DURATION
_QUERY = catalogue.QUERY_DURATION
COMMAND_P99 = f"cassandra_datacenter:{_COMMAND.name}:p99_rate{LATENCY_WINDOW}"
COMMAND_SAMPLES = f"cassandra_datacenter:{_COMMAND.count}:increase{LATENCY_WINDOW}"
QUERY_P99 = f"cassandra_datacenter_query:{_QUERY.name}:p99_rate{LATENCY_WINDOW}"
QUERY_SAMPLES = f"cassandra_datacenter_query:{_QUERY.count}:increase{LATENCY_WINDOW}"
SYNC_CHECKS = f"read_model:{catalogue.SYNC_CHECKS.name}:increase{SYNC_WINDOW}"
SYNC_FAILURES = f"read_model:{catalogue.SYNC_FAILURES.name}:increase{SYNC_WINDOW}"
SYNC_RATIO = f"read_model:{catalogue.SYNC_FAILURE_RATIO.name}:ratio{SYNC_WINDOW}"
SYNC_RATIO_LOWER = f"read_model:{catalogue.SYNC_FAILURE_RATIO.name}:wilson_lower{SYNC_WINDOW}"


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class AlertRule:
    """One alert, and the queries it stands on (for the end-to-end proof that they have data)."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    inputs: tuple[str, ...]
    """Queries that return data on a healthy, monitored system: the signal, unthresholded."""

    @property
    def anchor(self) -> str:
        """The runbook section's anchor: GitHub lowercases a heading to make its id."""
        return self.name.lower()

    def to_dict(self, settings: Settings) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": settings.for_overrides.get(self.name, self.for_),
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{settings.runbook_url}#{self.anchor}",
            },
        }


def _histogram_p99(spec: MetricSpec, by: str) -> str:
    # rate() the buckets first, then sum them: a quantile of the cumulative buckets would be
    # the p99 since the exporter started (and jump at every restart), not the recent one.
    return f"histogram_quantile(0.99, sum by ({by}, le) (rate({spec.bucket}[{LATENCY_WINDOW}])))"


def _increase(by: str, sample: str, window: str) -> str:
    return f"sum by ({by}) (increase({sample}[{window}]))"


def recording_rules() -> list[RecordingRule]:
    # Wilson score interval, lower bound: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    z = Z_95
    z2 = round(z * z, 6)
    n = SYNC_CHECKS
    p = SYNC_RATIO
    wilson_lower = (
        f"(\n  {p} + {promql_number(z2 / 2)} / {n}\n"
        f"  - {z} * sqrt({p} * (1 - {p}) / {n} + {promql_number(z2 / 4)} / ({n} * {n}))\n"
        f") / (1 + {promql_number(z2)} / {n})"
    )
    return [
        RecordingRule(COMMAND_P99, _histogram_p99(_COMMAND, "cassandra_datacenter")),
        RecordingRule(
            COMMAND_SAMPLES, _increase("cassandra_datacenter", _COMMAND.count, LATENCY_WINDOW)
        ),
        RecordingRule(QUERY_P99, _histogram_p99(_QUERY, "cassandra_datacenter, query")),
        RecordingRule(
            QUERY_SAMPLES, _increase("cassandra_datacenter, query", _QUERY.count, LATENCY_WINDOW)
        ),
        RecordingRule(
            SYNC_CHECKS, _increase("read_model", catalogue.SYNC_CHECKS.total, SYNC_WINDOW)
        ),
        RecordingRule(
            SYNC_FAILURES, _increase("read_model", catalogue.SYNC_FAILURES.total, SYNC_WINDOW)
        ),
        # Both counters are extrapolated by increase(); clamp so a rounding excess over the
        # checks can never make the ratio exceed 1 (and the square root below undefined).
        RecordingRule(SYNC_RATIO, f"clamp_max({SYNC_FAILURES} / {SYNC_CHECKS}, 1)"),
        RecordingRule(SYNC_RATIO_LOWER, wilson_lower),
    ]


def alert_rules(settings: Settings) -> list[AlertRule]:
    t = settings.thresholds
    replication = promql_number(t.replication_lag)
    sync_lag = promql_number(t.read_model_sync_lag)
    query = promql_number(t.query_latency_p99)
    command = promql_number(t.command_latency_p99)
    failure = promql_number(t.sync_failure_rate)
    replication_h = format_duration(t.replication_lag)
    sync_lag_h = format_duration(t.read_model_sync_lag)
    query_h = format_duration(t.query_latency_p99)
    command_h = format_duration(t.command_latency_p99)
    failure_h = human_percent(t.sync_failure_rate)
    min_samples = settings.min_samples
    sentinel_timeout_h = format_duration(settings.sentinel_timeout)

    pair = ", ".join(catalogue.PAIR)
    replication_lag = f"max by ({pair}) ({catalogue.REPLICATION_LAG.name})"
    read_model_lag = f"max by (read_model) ({catalogue.READ_MODEL_SYNC_LAG.name})"
    lost = _increase(pair, catalogue.REPLICATION_SENTINELS_LOST.total, "10m")
    probe_failure_ratio = (
        f"sum without (reason) (rate({catalogue.PROBE_FAILURES.total}[5m]))\n"
        f"/\nrate({catalogue.PROBE_RUNS.total}[5m])"
    )
    build_info = catalogue.EXPORTER_BUILD.total
    exporter_seen = f"max_over_time({build_info}[1d])"

    return [
        AlertRule(
            name="CqrsReplicationLagHigh",
            expr=f"{replication_lag} > {replication}",
            for_="2m",
            severity=settings.severity(Check.REPLICATION_LAG),
            summary="Replication to {{ $labels.target_datacenter }} lags by more than "
            f"{replication_h}.",
            description="Commands acknowledged in {{ $labels.source_datacenter }} became "
            "readable in {{ $labels.target_datacenter }} only after "
            "{{ $value | humanizeDuration }} "
            f"(threshold {replication_h}): queries served from "
            "{{ $labels.target_datacenter }} return stale data.",
            inputs=(replication_lag,),
        ),
        AlertRule(
            name="CqrsReadModelSyncLagHigh",
            expr=f"{read_model_lag} > {sync_lag}",
            for_="2m",
            severity=settings.severity(Check.READ_MODEL_SYNC_LAG),
            summary="Read model {{ $labels.read_model }} trails the write side by more than "
            f"{sync_lag_h}.",
            description="Read model {{ $labels.read_model }} is {{ $value | humanizeDuration }} "
            f"behind the write side (threshold {sync_lag_h}): queries on it miss recent commands.",
            inputs=(read_model_lag,),
        ),
        AlertRule(
            name="CqrsQueryLatencyP99High",
            expr=f"{QUERY_P99} > {query}\n"
            f"and on (cassandra_datacenter, query)\n{QUERY_SAMPLES} >= {min_samples}",
            for_="5m",
            severity=settings.severity(Check.QUERY_LATENCY_P99),
            summary=f"Query p99 in {{{{ $labels.cassandra_datacenter }}}} is above {query_h}.",
            description="The p99 latency of queries{{ with $labels.query }} '{{ . }}'{{ end }} "
            "in {{ $labels.cassandra_datacenter }} over the last "
            f"{LATENCY_WINDOW} is {{{{ $value | humanizeDuration }}}} (threshold {query_h}, "
            f"judged on at least {min_samples} samples).",
            inputs=(QUERY_P99, QUERY_SAMPLES),
        ),
        AlertRule(
            name="CqrsCommandLatencyP99High",
            expr=f"{COMMAND_P99} > {command}\n"
            f"and on (cassandra_datacenter)\n{COMMAND_SAMPLES} >= {min_samples}",
            for_="5m",
            severity=settings.severity(Check.COMMAND_LATENCY_P99),
            summary=f"Command p99 in {{{{ $labels.cassandra_datacenter }}}} is above {command_h}.",
            description="The p99 latency of commands (writes) in "
            "{{ $labels.cassandra_datacenter }} over the last "
            f"{LATENCY_WINDOW} is {{{{ $value | humanizeDuration }}}} (threshold {command_h}, "
            f"judged on at least {min_samples} samples).",
            inputs=(COMMAND_P99, COMMAND_SAMPLES),
        ),
        AlertRule(
            name="CqrsSyncFailureRateHigh",
            expr=f"{SYNC_RATIO_LOWER} > {failure}\n"
            f"and on (read_model)\n({SYNC_CHECKS} >= {settings.min_checks}\n"
            f" or {SYNC_FAILURES} >= {settings.early_failures})",
            for_="5m",
            severity=settings.severity(Check.SYNC_FAILURE_RATE),
            summary="Read model {{ $labels.read_model }} fails more than "
            f"{failure_h} of its sync checks.",
            description="At least {{ $value | humanizePercentage }} of the sync checks of read "
            "model {{ $labels.read_model }} failed (missing or wrong rows) over the last "
            f"{SYNC_WINDOW}: the lower bound of the 95% confidence interval is above the "
            f"{failure_h} threshold (judged on at least {settings.min_checks} checks or "
            f"{settings.early_failures} failures).",
            inputs=(SYNC_RATIO, SYNC_RATIO_LOWER, SYNC_CHECKS, SYNC_FAILURES),
        ),
        AlertRule(
            name="CqrsReplicationSentinelsLost",
            expr=f"{lost} > 0",
            for_="2m",
            severity="warning",
            summary="Sentinels written in {{ $labels.source_datacenter }} never reached "
            "{{ $labels.target_datacenter }}.",
            description="Replication sentinels written in {{ $labels.source_datacenter }} "
            "were not readable in {{ $labels.target_datacenter }} within "
            f"{sentinel_timeout_h}: {{{{ $value | humanize }}}} lost over the last 10m "
            "(threshold: none lost).",
            inputs=(lost,),
        ),
        AlertRule(
            name="CqrsProbeFailing",
            expr=f"(\n{probe_failure_ratio}\n) > 0.5",
            for_="5m",
            severity="warning",
            summary="Probe {{ $labels.probe }} of {{ $labels.instance }} is failing.",
            description="{{ $value | humanizePercentage }} of the runs of probe "
            "{{ $labels.probe }} on {{ $labels.instance }} failed over the last 5m "
            "(threshold 50%): what it measures is unknown or stale.",
            inputs=(probe_failure_ratio,),
        ),
        AlertRule(
            name="CqrsExporterDown",
            # `absent` covers no exporter at all; the second arm names each exporter target
            # that was seen in the last day but whose scrapes now fail. No job name is
            # assumed, so the rule works whatever the scrape config calls the job.
            expr=f"absent({build_info})\nor\n(up == 0 and on (job, instance) {exporter_seen})",
            for_="5m",
            severity="critical",
            summary="The CQRS exporter{{ with $labels.instance }} {{ . }}{{ end }} is not "
            "being scraped.",
            description="Prometheus has no data from the CQRS exporter"
            "{{ with $labels.instance }} {{ . }}{{ end }} (target down or absent; threshold: "
            "any): every other CQRS alert is blind until it is back.",
            inputs=(f"up and on (job, instance) {exporter_seen}", build_info),
        ),
    ]


def rule_groups(settings: Settings) -> dict[str, Any]:
    """The rule file's content: recording rules first, then the alerts."""
    return {
        "groups": [
            {
                "name": "cqrs-exporter.recording",
                "rules": [rule.to_dict() for rule in recording_rules()],
            },
            {
                "name": "cqrs-exporter.alerts",
                "rules": [rule.to_dict(settings) for rule in alert_rules(settings)],
            },
        ]
    }
