"""CQRS overview: is the system healthy, against the same thresholds as /health."""

from __future__ import annotations

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.dashboards.common import (
    BY_PAIR,
    DATACENTER,
    INSTANCE,
    PAIR,
    READ_MODEL,
    TARGET_DATACENTER,
    UP_DOWN,
    datacenter_variable,
    health_state,
    instance_variable,
    quantile,
    read_model_variable,
    selector,
    state,
)
from exporter.generate.panels import (
    PERCENT_UNIT,
    SECONDS,
    Dashboard,
    Row,
    dashboard,
    datasource_variable,
    graph,
    queries,
    threshold_steps,
    value_stat,
)
from exporter.generate.rules import LATENCY_WINDOW
from exporter.generate.settings import Settings, human_percent


def overview(settings: Settings) -> Dashboard:
    t = settings.thresholds
    inst = selector(INSTANCE)
    dc = selector(INSTANCE, DATACENTER)
    target = selector(INSTANCE, TARGET_DATACENTER)
    model = selector(INSTANCE, READ_MODEL)
    replication_h = format_duration(t.replication_lag)
    sync_h = format_duration(t.read_model_sync_lag)
    command_h = format_duration(t.command_latency_p99)
    query_h = format_duration(t.query_latency_p99)
    failure_h = human_percent(t.sync_failure_rate)
    command = catalogue.COMMAND_DURATION
    query = catalogue.QUERY_DURATION
    command_p99 = quantile("0.99", command, dc, "cassandra_datacenter")
    query_p99 = quantile("0.99", query, dc, "cassandra_datacenter, query")
    replication_lag = catalogue.REPLICATION_LAG.name
    sync_lag = catalogue.READ_MODEL_SYNC_LAG.name
    ratio = catalogue.SYNC_FAILURE_RATIO.name
    ratio_lower = catalogue.SYNC_FAILURE_RATIO_LOWER.name

    health = Row(
        "Health",
        [
            state(
                "Overall health",
                "The verdict /health gives. DOWN: commands cannot be written or a read model "
                "is too far behind: find the red stat to the right and follow its alert's "
                "runbook. DEGRADED: reads are slow or stale somewhere. UNKNOWN: no probe has "
                "reported yet.",
                health_state(catalogue.HEALTH_OVERALL_STATUS, INSTANCE),
                "overall",
                (3, 5),
                text_mode="value",
            ),
            state(
                "Write path",
                "Whether the write datacenter accepts commands. DOWN means commands fail: "
                "check the write datacenter's nodes first (CqrsProbeFailing names the "
                "failing probe).",
                health_state(catalogue.HEALTH_STATUS, f'{INSTANCE}, check="write_path"'),
                "write path",
                (3, 5),
                text_mode="value",
            ),
            value_stat(
                title="Replication lag (worst)",
                description=f"The slowest read datacenter's replication lag; red above "
                f"{replication_h}. The Replication dashboard says which datacenter.",
                targets=queries((f"max({replication_lag}{target})", "lag")),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                size=(3, 5),
            ),
            value_stat(
                title="Read-model sync lag (worst)",
                description=f"The read model furthest behind the write side; red above "
                f"{sync_h}. The Read models dashboard says which one.",
                targets=queries((f"max({sync_lag}{model})", "lag")),
                unit=SECONDS,
                thresholds=threshold_steps(t.read_model_sync_lag),
                size=(3, 5),
            ),
            value_stat(
                title="Command p99 (worst)",
                description=f"The worst datacenter's command p99 over {LATENCY_WINDOW}; red "
                f"above {command_h}.",
                targets=queries(
                    (
                        "max("
                        + quantile("0.99", command, dc, "cassandra_datacenter", LATENCY_WINDOW)
                        + ")",
                        "p99",
                    )
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.command_latency_p99),
                size=(3, 5),
            ),
            value_stat(
                title="Query p99 (worst)",
                description=f"The worst datacenter's query p99 over {LATENCY_WINDOW}; red "
                f"above {query_h}.",
                targets=queries(
                    (
                        "max("
                        + quantile("0.99", query, dc, "cassandra_datacenter, query", LATENCY_WINDOW)
                        + ")",
                        "p99",
                    )
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.query_latency_p99),
                size=(3, 5),
            ),
            value_stat(
                title="Sync failure ratio (worst)",
                description=f"The read model with the highest share of failed sync checks "
                f"(lower bound of its 95% interval, as /health judges it); red above "
                f"{failure_h}.",
                targets=queries((f"max({ratio_lower}{model})", "ratio")),
                unit=PERCENT_UNIT,
                thresholds=threshold_steps(t.sync_failure_rate),
                size=(3, 5),
            ),
            state(
                "Cassandra answers",
                "Whether the exporter has a session and some datacenter answered its last "
                "reachability probe. DOWN: every other panel is stale; see the CQRS exporter "
                "dashboard.",
                f"min({catalogue.UP.name}{inst})",
                catalogue.UP.name,
                (3, 5),
                UP_DOWN,
                text_mode="value",
            ),
        ],
    )
    lag = Row(
        "Lag",
        [
            graph(
                title="Replication lag by read datacenter",
                description=f"How long after a command is acknowledged in the write "
                f"datacenter each read datacenter can read it. Above {replication_h} (the "
                f"red line) queries there serve stale data: see the runbook of "
                f"CqrsReplicationLagHigh.",
                targets=queries((f"max by ({BY_PAIR}) ({replication_lag}{target})", PAIR)),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                size=(12, 8),
            ),
            graph(
                title="Read-model sync lag",
                description=f"How far each read model trails the write side. Above {sync_h} "
                f"(the red line) /health is DOWN: see the runbook of CqrsReadModelSyncLagHigh "
                f"(is the projector or consumer running?).",
                targets=queries(
                    (f"max by (read_model) ({sync_lag}{model})", "{{read_model}}"),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.read_model_sync_lag),
                size=(12, 8),
            ),
        ],
    )
    latency = Row(
        "Latency",
        [
            graph(
                title="Command p99 by datacenter",
                description=f"p99 of the exporter's probe commands (writes), from the "
                f"histogram. Above {command_h} (the red line) commands are slow: check the "
                f"write datacenter's load, compactions and GC.",
                targets=queries((command_p99, "{{cassandra_datacenter}}")),
                unit=SECONDS,
                thresholds=threshold_steps(t.command_latency_p99),
                size=(12, 8),
            ),
            graph(
                title="Query p99 by datacenter and query",
                description=f"p99 of the exporter's probe reads (no query name) and of the "
                f"declared read-model queries, per datacenter. Above {query_h} (the red line) "
                f"reads are slow there: check that datacenter's nodes, or route reads "
                f"elsewhere.",
                targets=queries((query_p99, "{{cassandra_datacenter}} {{query}}")),
                unit=SECONDS,
                thresholds=threshold_steps(t.query_latency_p99),
                size=(12, 8),
            ),
        ],
    )
    consistency = Row(
        "Read-model consistency",
        [
            graph(
                title="Sync failure ratio by read model",
                description=f"Share of sync checks that found a read-model row missing, "
                f"wrong or stale (with the lower bound of its 95% interval, which /health "
                f"and the alert judge). Above {failure_h} (the red line) read models lose or "
                f"corrupt writes: see the runbook of CqrsSyncFailureRateHigh.",
                targets=queries(
                    (f"max by (read_model) ({ratio}{model})", "{{read_model}}"),
                    (
                        f"max by (read_model) ({ratio_lower}{model})",
                        "{{read_model}} (lower bound)",
                    ),
                ),
                unit=PERCENT_UNIT,
                thresholds=threshold_steps(t.sync_failure_rate),
                size=(12, 8),
            ),
            state(
                "Health checks",
                "Each /health check's current state. A check enters a worse state only after "
                "several breaching evaluations, so a short spike does not show here.",
                health_state(catalogue.HEALTH_STATUS, INSTANCE, by="check"),
                "{{check}}",
                (12, 8),
                orientation="horizontal",
            ),
        ],
    )
    return dashboard(
        title="CQRS overview",
        uid="cqrs-overview",
        description="Is the CQRS system healthy: write path, replication, read models, "
        "latency and sync failures against their thresholds.",
        variables=[
            datasource_variable(),
            instance_variable(),
            datacenter_variable(),
            read_model_variable(),
        ],
        rows=[health, lag, latency, consistency],
    )
