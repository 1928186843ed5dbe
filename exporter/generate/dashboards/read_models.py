"""CQRS read models: how far each trails the write side, and how many writes never reach it."""

from __future__ import annotations

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.dashboards.common import (
    INSTANCE,
    RATE,
    READ_MODEL,
    instance_variable,
    read_model_variable,
    selector,
)
from exporter.generate.panels import (
    NONE,
    OPS,
    PERCENT_UNIT,
    SECONDS,
    Dashboard,
    Row,
    dashboard,
    datasource_variable,
    graph,
    queries,
    threshold_steps,
)
from exporter.generate.settings import Settings, human_percent
from exporter.metric_catalogue import MetricSpec

LEGEND = "{{read_model}}"


def read_models(settings: Settings) -> Dashboard:
    t = settings.thresholds
    model = selector(INSTANCE, READ_MODEL)
    sync_h = format_duration(t.read_model_sync_lag)
    failure_h = human_percent(t.sync_failure_rate)

    def worst(spec: MetricSpec) -> str:
        return f"max by (read_model) ({spec.name}{model})"

    def per_second(spec: MetricSpec, by: str = "read_model") -> str:
        return f"sum by ({by}) (rate({spec.total}{model}[{RATE}]))"

    lag = Row(
        "Sync lag",
        [
            graph(
                title="Read-model sync lag",
                description=f"How far each read model trails the write side: zero when caught "
                f"up, growing while its projector or consumer is stuck. Above {sync_h} (the "
                f"red line) /health is DOWN: see the runbook of CqrsReadModelSyncLagHigh.",
                targets=queries((worst(catalogue.READ_MODEL_SYNC_LAG), LEGEND)),
                unit=SECONDS,
                thresholds=threshold_steps(t.read_model_sync_lag),
                size=(16, 9),
            ),
            graph(
                title="Source clock ahead of the exporter",
                description="The most a source timestamp (event TIMEUUID or WRITETIME) has "
                "been ahead of the exporter's clock. Above zero, clock skew makes lags read "
                "low by that much: synchronize the clocks (NTP).",
                targets=queries((worst(catalogue.READ_MODEL_SOURCE_CLOCK_AHEAD), LEGEND)),
                unit=SECONDS,
                size=(8, 9),
            ),
        ],
    )
    failures = Row(
        "Sync failures",
        [
            graph(
                title="Sync failure ratio with its 95% interval",
                description=f"Failed share of the checks in each read model's failure window, "
                f"with the bounds of its 95% Wilson interval: few checks give a wide "
                f"interval. /health and CqrsSyncFailureRateHigh judge the lower bound against "
                f"{failure_h} (the red line), so a breach is real, not noise.",
                targets=queries(
                    (worst(catalogue.SYNC_FAILURE_RATIO), LEGEND),
                    (worst(catalogue.SYNC_FAILURE_RATIO_LOWER), f"{LEGEND} lower"),
                    (worst(catalogue.SYNC_FAILURE_RATIO_UPPER), f"{LEGEND} upper"),
                ),
                unit=PERCENT_UNIT,
                thresholds=threshold_steps(t.sync_failure_rate),
                size=(12, 8),
            ),
            graph(
                title="Failed sync checks per second, by reason",
                description="missing: a write-side row never reached the read model within "
                "its grace period; mismatch: it arrived with wrong fields; stale: an older "
                "version is still there. Missing points at the sync path (consumer, "
                "projector), mismatch at the mapping code.",
                targets=queries(
                    (
                        per_second(catalogue.SYNC_FAILURES, "read_model, reason"),
                        f"{LEGEND} {{{{reason}}}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
            graph(
                title="Checks in the failure window",
                description="How many checks the ratio above rests on. Below the read model's "
                "min_checks its verdict is 'insufficient data' unless even the interval's "
                "lower bound is above the threshold; raise the audit budget if it stays low.",
                targets=queries((worst(catalogue.SYNC_WINDOW_CHECKS), LEGEND)),
                unit=NONE,
                size=(8, 8),
            ),
            graph(
                title="Sync checks per second",
                description="Rows (or sentinels) checked against each read model.",
                targets=queries((per_second(catalogue.SYNC_CHECKS), LEGEND)),
                unit=OPS,
                size=(8, 8),
            ),
            graph(
                title="Probe queries per second",
                description="CQL requests each read model's probe sends: what measuring costs "
                "the cluster. An audit stays within its configured budget.",
                targets=queries((per_second(catalogue.READ_MODEL_QUERIES), LEGEND)),
                unit=OPS,
                size=(8, 8),
            ),
        ],
    )
    return dashboard(
        title="CQRS read models",
        uid="cqrs-read-models",
        description="How far each read model trails the write side, and how many writes "
        "never reach it correctly.",
        variables=[datasource_variable(), instance_variable(), read_model_variable()],
        rows=[lag, failures],
    )
