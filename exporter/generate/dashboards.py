"""The Grafana dashboards, one function each, thresholds from the same Settings as the rules."""

from __future__ import annotations

from collections.abc import Callable

from grafanalib import core

from exporter.config import format_duration
from exporter.generate.panels import (
    BYTES,
    GREEN,
    GREY,
    NONE,
    OPS,
    ORANGE,
    PERCENT_UNIT,
    RED,
    SECONDS,
    CqrsDashboard,
    Graph,
    Row,
    StateStat,
    ValueStat,
    datasource_variable,
    label_variable,
    layout,
    minimum_steps,
    queries,
    size,
    state_mappings,
    threshold_steps,
)
from exporter.generate.rules import LATENCY_WINDOW
from exporter.generate.settings import Settings, human_percent

INSTANCE = 'instance=~"$instance"'
DATACENTER = 'cassandra_datacenter=~"$datacenter"'
TARGET_DATACENTER = 'target_datacenter=~"$datacenter"'
READ_MODEL = 'read_model=~"$read_model"'
RATE = "$__rate_interval"

# Health states in /health's order of severity, encoded so that max() is the worst.
HEALTH_STATES = ((0, "UNKNOWN", GREY), (1, "UP", GREEN), (2, "DEGRADED", ORANGE), (3, "DOWN", RED))
UP_DOWN = ((0, "DOWN", RED), (1, "UP", GREEN))
PAIR = "{{source_datacenter}} → {{target_datacenter}}"
BY_PAIR = "source_datacenter, target_datacenter"


def _selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def health_state(metric: str, matchers: str, by: str = "") -> str:
    """The worst current state among a health state set's series, as 0..3 (HEALTH_STATES)."""
    arms = " or ".join(
        f'({metric}{{{matchers}, status="{name}"}} == 1) * {value}'
        for value, name, _ in HEALTH_STATES
    )
    grouping = f" by ({by})" if by else ""
    return f"max{grouping} ({arms})"


def quantile(q: str, metric: str, selector: str, by: str, window: str = RATE) -> str:
    """A quantile of a histogram over rate()d buckets (never of the cumulative buckets)."""
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{selector}[{window}])))"


def _instance_variable() -> core.Template:
    return label_variable("instance", "Exporter", "cqrs_exporter_build_info", "instance")


def _datacenter_variable() -> core.Template:
    return label_variable(
        "datacenter", "Datacenter", "cqrs_datacenter_reachable", "cassandra_datacenter"
    )


def _read_model_variable() -> core.Template:
    return label_variable(
        "read_model", "Read model", "cqrs_read_model_sync_lag_seconds", "read_model"
    )


def _state(
    title: str,
    description: str,
    expr: str,
    legend: str,
    width: int,
    height: int,
    states: tuple[tuple[int, str, str], ...] = HEALTH_STATES,
    **extra: object,
) -> StateStat:
    return StateStat(
        title=title,
        description=description,
        targets=queries((expr, legend)),
        mappings=state_mappings(states),
        gridPos=size(width, height),
        **extra,
    )


def overview(settings: Settings) -> core.Dashboard:
    t = settings.thresholds
    inst = _selector(INSTANCE)
    dc = _selector(INSTANCE, DATACENTER)
    target = _selector(INSTANCE, TARGET_DATACENTER)
    model = _selector(INSTANCE, READ_MODEL)
    replication_h = format_duration(t.replication_lag)
    sync_h = format_duration(t.read_model_sync_lag)
    command_h = format_duration(t.command_latency_p99)
    query_h = format_duration(t.query_latency_p99)
    failure_h = human_percent(t.sync_failure_rate)
    command_p99 = quantile("0.99", "cqrs_command_duration_seconds", dc, "cassandra_datacenter")
    query_p99 = quantile("0.99", "cqrs_query_duration_seconds", dc, "cassandra_datacenter, query")

    health = Row(
        "Health",
        [
            _state(
                "Overall health",
                "The verdict /health gives. DOWN: commands cannot be written or a read model "
                "is too far behind: find the red stat to the right and follow its alert's "
                "runbook. DEGRADED: reads are slow or stale somewhere. UNKNOWN: no probe has "
                "reported yet.",
                health_state("cqrs_health_overall_status", INSTANCE),
                "overall",
                3,
                5,
                textMode="value",
            ),
            _state(
                "Write path",
                "Whether the write datacenter accepts commands. DOWN means commands fail: "
                "check the write datacenter's nodes first (CqrsProbeFailing names the "
                "failing probe).",
                health_state("cqrs_health_status", f'{INSTANCE}, check="write_path"'),
                "write path",
                3,
                5,
                textMode="value",
            ),
            ValueStat(
                title="Replication lag (worst)",
                description=f"The slowest read datacenter's replication lag; red above "
                f"{replication_h}. The Replication dashboard says which datacenter.",
                targets=queries((f"max(cqrs_replication_lag_seconds{target})", "lag")),
                format=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                gridPos=size(3, 5),
            ),
            ValueStat(
                title="Read-model sync lag (worst)",
                description=f"The read model furthest behind the write side; red above "
                f"{sync_h}. The Read models dashboard says which one.",
                targets=queries((f"max(cqrs_read_model_sync_lag_seconds{model})", "lag")),
                format=SECONDS,
                thresholds=threshold_steps(t.read_model_sync_lag),
                gridPos=size(3, 5),
            ),
            ValueStat(
                title="Command p99 (worst)",
                description=f"The worst datacenter's command p99 over {LATENCY_WINDOW}; red "
                f"above {command_h}.",
                targets=queries(
                    (
                        "max("
                        + quantile(
                            "0.99",
                            "cqrs_command_duration_seconds",
                            dc,
                            "cassandra_datacenter",
                            LATENCY_WINDOW,
                        )
                        + ")",
                        "p99",
                    )
                ),
                format=SECONDS,
                thresholds=threshold_steps(t.command_latency_p99),
                gridPos=size(3, 5),
            ),
            ValueStat(
                title="Query p99 (worst)",
                description=f"The worst datacenter's query p99 over {LATENCY_WINDOW}; red "
                f"above {query_h}.",
                targets=queries(
                    (
                        "max("
                        + quantile(
                            "0.99",
                            "cqrs_query_duration_seconds",
                            dc,
                            "cassandra_datacenter, query",
                            LATENCY_WINDOW,
                        )
                        + ")",
                        "p99",
                    )
                ),
                format=SECONDS,
                thresholds=threshold_steps(t.query_latency_p99),
                gridPos=size(3, 5),
            ),
            ValueStat(
                title="Sync failure ratio (worst)",
                description=f"The read model with the highest share of failed sync checks "
                f"(lower bound of its 95% interval, as /health judges it); red above "
                f"{failure_h}.",
                targets=queries((f"max(cqrs_sync_failure_ratio_lower{model})", "ratio")),
                format=PERCENT_UNIT,
                thresholds=threshold_steps(t.sync_failure_rate),
                gridPos=size(3, 5),
            ),
            _state(
                "Cassandra answers",
                "Whether the exporter has a session and some datacenter answered its last "
                "reachability probe. DOWN: every other panel is stale; see the CQRS exporter "
                "dashboard.",
                f"min(cqrs_up{inst})",
                "cqrs_up",
                3,
                5,
                states=UP_DOWN,
                textMode="value",
            ),
        ],
    )
    lag = Row(
        "Lag",
        [
            Graph(
                title="Replication lag by read datacenter",
                description=f"How long after a command is acknowledged in the write "
                f"datacenter each read datacenter can read it. Above {replication_h} (the "
                f"red line) queries there serve stale data: see the runbook of "
                f"CqrsReplicationLagHigh.",
                targets=queries(
                    (f"max by ({BY_PAIR}) (cqrs_replication_lag_seconds{target})", PAIR)
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                gridPos=size(12, 8),
            ),
            Graph(
                title="Read-model sync lag",
                description=f"How far each read model trails the write side. Above {sync_h} "
                f"(the red line) /health is DOWN: see the runbook of CqrsReadModelSyncLagHigh "
                f"(is the projector or consumer running?).",
                targets=queries(
                    (
                        f"max by (read_model) (cqrs_read_model_sync_lag_seconds{model})",
                        "{{read_model}}",
                    )
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.read_model_sync_lag),
                gridPos=size(12, 8),
            ),
        ],
    )
    latency = Row(
        "Latency",
        [
            Graph(
                title="Command p99 by datacenter",
                description=f"p99 of the exporter's probe commands (writes), from the "
                f"histogram. Above {command_h} (the red line) commands are slow: check the "
                f"write datacenter's load, compactions and GC.",
                targets=queries((command_p99, "{{cassandra_datacenter}}")),
                unit=SECONDS,
                thresholds=threshold_steps(t.command_latency_p99),
                gridPos=size(12, 8),
            ),
            Graph(
                title="Query p99 by datacenter and query",
                description=f"p99 of the exporter's probe reads (no query name) and of the "
                f"declared read-model queries, per datacenter. Above {query_h} (the red line) "
                f"reads are slow there: check that datacenter's nodes, or route reads "
                f"elsewhere.",
                targets=queries((query_p99, "{{cassandra_datacenter}} {{query}}")),
                unit=SECONDS,
                thresholds=threshold_steps(t.query_latency_p99),
                gridPos=size(12, 8),
            ),
        ],
    )
    consistency = Row(
        "Read-model consistency",
        [
            Graph(
                title="Sync failure ratio by read model",
                description=f"Share of sync checks that found a read-model row missing, "
                f"wrong or stale (with the lower bound of its 95% interval, which /health "
                f"and the alert judge). Above {failure_h} (the red line) read models lose or "
                f"corrupt writes: see the runbook of CqrsSyncFailureRateHigh.",
                targets=queries(
                    (f"max by (read_model) (cqrs_sync_failure_ratio{model})", "{{read_model}}"),
                    (
                        f"max by (read_model) (cqrs_sync_failure_ratio_lower{model})",
                        "{{read_model}} (lower bound)",
                    ),
                ),
                unit=PERCENT_UNIT,
                thresholds=threshold_steps(t.sync_failure_rate),
                gridPos=size(12, 8),
            ),
            _state(
                "Health checks",
                "Each /health check's current state. A check enters a worse state only after "
                "several breaching evaluations, so a short spike does not show here.",
                health_state("cqrs_health_status", INSTANCE, by="check"),
                "{{check}}",
                12,
                8,
                orientation="horizontal",
            ),
        ],
    )
    return CqrsDashboard(
        title="CQRS overview",
        uid="cqrs-overview",
        description="Is the CQRS system healthy: write path, replication, read models, "
        "latency and sync failures against their thresholds.",
        templating=core.Templating(
            [
                datasource_variable(),
                _instance_variable(),
                _datacenter_variable(),
                _read_model_variable(),
            ]
        ),
        panels=layout([health, lag, latency, consistency]),
    ).auto_panel_ids()


def replication(settings: Settings) -> core.Dashboard:
    t = settings.thresholds
    target = _selector(INSTANCE, TARGET_DATACENTER)
    replication_h = format_duration(t.replication_lag)

    lag = Row(
        "Replication lag",
        [
            Graph(
                title="Replication lag",
                description=f"Age of the oldest sentinel written in the write datacenter and "
                f"not yet readable in each read datacenter, on the exporter's own clock: it "
                f"keeps growing while nothing arrives. Above {replication_h} (the red line): "
                f"see the runbook of CqrsReplicationLagHigh.",
                targets=queries(
                    (f"max by ({BY_PAIR}) (cqrs_replication_lag_seconds{target})", PAIR)
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                gridPos=size(24, 9),
            ),
            Graph(
                title="Sentinel visibility p50 / p99",
                description="How long completed sentinels took to become visible. A p99 "
                "creeping towards the threshold warns before the lag alert does.",
                targets=queries(
                    (
                        quantile("0.5", "cqrs_replication_visibility_seconds", target, BY_PAIR),
                        "p50 " + PAIR,
                    ),
                    (
                        quantile("0.99", "cqrs_replication_visibility_seconds", target, BY_PAIR),
                        "p99 " + PAIR,
                    ),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                gridPos=size(12, 8),
            ),
            Graph(
                title="Lag resolution",
                description="Width of the interval (last miss to first sighting) each lag "
                "estimate is the midpoint of: lags closer than this cannot be told apart. "
                "Lower the poll interval to narrow it.",
                targets=queries(
                    (f"max by ({BY_PAIR}) (cqrs_replication_lag_resolution_seconds{target})", PAIR)
                ),
                unit=SECONDS,
                gridPos=size(12, 8),
            ),
        ],
    )
    losses = Row(
        "Lost sentinels and failed reads",
        [
            Graph(
                title="Lost sentinels",
                description=f"Sentinels not readable in a read datacenter within "
                f"{format_duration(settings.sentinel_timeout)}. Any loss means that "
                f"datacenter did not receive writes at all: see the runbook of "
                f"CqrsReplicationSentinelsLost.",
                targets=queries(
                    (
                        f"sum by ({BY_PAIR}) "
                        f"(increase(cqrs_replication_sentinels_lost_total{target}[{RATE}]))",
                        PAIR,
                    )
                ),
                unit=NONE,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Failed visibility reads per second, by reason",
                description="Reads of a sentinel (or heartbeat) in a read datacenter that "
                "failed or timed out; each counts as a miss, so the lag keeps growing. "
                "timeout or unavailable: that datacenter's node is slow or down.",
                targets=queries(
                    (
                        f"sum by ({BY_PAIR}, reason) "
                        f"(rate(cqrs_replication_read_failures_total{target}[{RATE}]))",
                        PAIR + " {{reason}}",
                    )
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Sentinels written per second",
                description="Sentinels acknowledged in the write datacenter. Flat at zero: "
                "the writer exporter cannot write (see CqrsProbeFailing), and no lag can be "
                "measured.",
                targets=queries(
                    (
                        "sum by (source_datacenter) (rate(cqrs_replication_sentinels_written_total"
                        f"{_selector(INSTANCE)}[{RATE}]))",
                        "{{source_datacenter}}",
                    )
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Heartbeat age (regional exporters)",
                description="Age of the writer's newest heartbeat as seen by an exporter in a "
                "read region, from the heartbeat's write time. It compares two clocks (clock "
                "skew adds to it) and includes up to one writer interval. Empty unless a "
                "regional exporter runs.",
                targets=queries(
                    (f"max by ({BY_PAIR}) (cqrs_replication_heartbeat_age_seconds{target})", PAIR)
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                gridPos=size(12, 8),
            ),
        ],
    )
    backlog = Row(
        "Cassandra's replication backlog",
        [
            Graph(
                title="Pending hint files",
                description="Hints the write datacenter's nodes hold for nodes of each read "
                "datacenter: writes those replicas missed, replayed when they come back "
                "(within max_hint_window; after longer outages run a repair).",
                targets=queries(
                    (f"max by ({BY_PAIR}) (cqrs_replication_hints_pending_files{target})", PAIR)
                ),
                unit=NONE,
                gridPos=size(8, 8),
            ),
            Graph(
                title="Internode messages queued",
                description="Messages queued on the write datacenter's nodes toward each read "
                "datacenter. A queue that keeps growing: the link or the remote nodes "
                "cannot keep up.",
                targets=queries(
                    (
                        f"max by ({BY_PAIR}) (cqrs_replication_internode_pending_messages{target})",
                        PAIR,
                    )
                ),
                unit=NONE,
                gridPos=size(8, 8),
            ),
            Graph(
                title="Internode bytes queued",
                description="Bytes queued on the write datacenter's nodes toward each read "
                "datacenter.",
                targets=queries(
                    (f"max by ({BY_PAIR}) (cqrs_replication_internode_pending_bytes{target})", PAIR)
                ),
                unit=BYTES,
                gridPos=size(8, 8),
            ),
        ],
    )
    return CqrsDashboard(
        title="CQRS replication",
        uid="cqrs-replication",
        description="Cross-datacenter replication from the write datacenter to each read "
        "datacenter, measured with sentinels on one clock, and Cassandra's own backlog.",
        templating=core.Templating(
            [
                datasource_variable(),
                _instance_variable(),
                label_variable(
                    "datacenter",
                    "Read datacenter",
                    "cqrs_replication_lag_seconds",
                    "target_datacenter",
                ),
            ]
        ),
        panels=layout([lag, losses, backlog]),
    ).auto_panel_ids()


def read_models(settings: Settings) -> core.Dashboard:
    t = settings.thresholds
    model = _selector(INSTANCE, READ_MODEL)
    sync_h = format_duration(t.read_model_sync_lag)
    failure_h = human_percent(t.sync_failure_rate)
    lag = Row(
        "Sync lag",
        [
            Graph(
                title="Read-model sync lag",
                description=f"How far each read model trails the write side: zero when caught "
                f"up, growing while its projector or consumer is stuck. Above {sync_h} (the "
                f"red line) /health is DOWN: see the runbook of CqrsReadModelSyncLagHigh.",
                targets=queries(
                    (
                        f"max by (read_model) (cqrs_read_model_sync_lag_seconds{model})",
                        "{{read_model}}",
                    )
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.read_model_sync_lag),
                gridPos=size(16, 9),
            ),
            Graph(
                title="Source clock ahead of the exporter",
                description="The most a source timestamp (event TIMEUUID or WRITETIME) has "
                "been ahead of the exporter's clock. Above zero, clock skew makes lags read "
                "low by that much: synchronize the clocks (NTP).",
                targets=queries(
                    (
                        f"max by (read_model) (cqrs_read_model_source_clock_ahead_seconds{model})",
                        "{{read_model}}",
                    )
                ),
                unit=SECONDS,
                gridPos=size(8, 9),
            ),
        ],
    )
    failures = Row(
        "Sync failures",
        [
            Graph(
                title="Sync failure ratio with its 95% interval",
                description=f"Failed share of the checks in each read model's failure window, "
                f"with the bounds of its 95% Wilson interval: few checks give a wide "
                f"interval. /health and CqrsSyncFailureRateHigh judge the lower bound against "
                f"{failure_h} (the red line), so a breach is real, not noise.",
                targets=queries(
                    (f"max by (read_model) (cqrs_sync_failure_ratio{model})", "{{read_model}}"),
                    (
                        f"max by (read_model) (cqrs_sync_failure_ratio_lower{model})",
                        "{{read_model}} lower",
                    ),
                    (
                        f"max by (read_model) (cqrs_sync_failure_ratio_upper{model})",
                        "{{read_model}} upper",
                    ),
                ),
                unit=PERCENT_UNIT,
                thresholds=threshold_steps(t.sync_failure_rate),
                gridPos=size(12, 8),
            ),
            Graph(
                title="Failed sync checks per second, by reason",
                description="missing: a write-side row never reached the read model within "
                "its grace period; mismatch: it arrived with wrong fields; stale: an older "
                "version is still there. Missing points at the sync path (consumer, "
                "projector), mismatch at the mapping code.",
                targets=queries(
                    (
                        f"sum by (read_model, reason) "
                        f"(rate(cqrs_sync_failures_total{model}[{RATE}]))",
                        "{{read_model}} {{reason}}",
                    )
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Checks in the failure window",
                description="How many checks the ratio above rests on. Below the read model's "
                "min_checks its verdict is 'insufficient data' unless even the interval's "
                "lower bound is above the threshold; raise the audit budget if it stays low.",
                targets=queries(
                    (f"max by (read_model) (cqrs_sync_window_checks{model})", "{{read_model}}")
                ),
                unit=NONE,
                gridPos=size(8, 8),
            ),
            Graph(
                title="Sync checks per second",
                description="Rows (or sentinels) checked against each read model.",
                targets=queries(
                    (
                        f"sum by (read_model) (rate(cqrs_sync_checks_total{model}[{RATE}]))",
                        "{{read_model}}",
                    )
                ),
                unit=OPS,
                gridPos=size(8, 8),
            ),
            Graph(
                title="Probe queries per second",
                description="CQL requests each read model's probe sends: what measuring costs "
                "the cluster. An audit stays within its configured budget.",
                targets=queries(
                    (
                        f"sum by (read_model) (rate(cqrs_read_model_queries_total{model}[{RATE}]))",
                        "{{read_model}}",
                    )
                ),
                unit=OPS,
                gridPos=size(8, 8),
            ),
        ],
    )
    return CqrsDashboard(
        title="CQRS read models",
        uid="cqrs-read-models",
        description="How far each read model trails the write side, and how many writes "
        "never reach it correctly.",
        templating=core.Templating(
            [datasource_variable(), _instance_variable(), _read_model_variable()]
        ),
        panels=layout([lag, failures]),
    ).auto_panel_ids()


def latency(settings: Settings) -> core.Dashboard:
    t = settings.thresholds
    dc = _selector(INSTANCE, DATACENTER)
    command_h = format_duration(t.command_latency_p99)
    query_h = format_duration(t.query_latency_p99)

    def operation_row(
        op: str, threshold: float, threshold_h: str, by: str, legend: str, what: str
    ) -> Row:
        return Row(
            f"{op.capitalize()}s",
            [
                Graph(
                    title=f"{op.capitalize()} p99: histogram and in-process",
                    description=f"The p99 of {what} two ways: from the Prometheus histogram "
                    f"over {LATENCY_WINDOW} (what the alert judges) and from the exporter's "
                    f"in-process HDR histogram over its window (what /health judges). They "
                    f"agree to within a bucket near the {threshold_h} threshold (the red "
                    f"line); if they do not, look at the samples panel.",
                    targets=queries(
                        (
                            quantile("0.99", f"cqrs_{op}_duration_seconds", dc, by, LATENCY_WINDOW),
                            f"histogram {legend}",
                        ),
                        (
                            f"max by ({by}) (cqrs_{op}_latency_p99_seconds{dc})",
                            f"in-process {legend}",
                        ),
                    ),
                    unit=SECONDS,
                    thresholds=threshold_steps(threshold),
                    gridPos=size(12, 8),
                ),
                Graph(
                    title=f"{op.capitalize()} latency quantiles",
                    description="p50, p99, p99.9 and the maximum over the exporter's window "
                    '(quantile="1" is the maximum). A maximum at the timeout means '
                    "requests timed out.",
                    targets=queries(
                        (
                            f"max by ({by}, quantile) (cqrs_{op}_latency_quantile_seconds{dc})",
                            f"{legend} q={{{{quantile}}}}",
                        ),
                    ),
                    unit=SECONDS,
                    thresholds=threshold_steps(threshold),
                    gridPos=size(12, 8),
                ),
                Graph(
                    title=f"{op.capitalize()} samples in the window",
                    description=f"Samples behind the in-process p99. Below "
                    f"{settings.min_samples} (the red line) the p99 is 'insufficient data' in "
                    f"/health and the alert does not judge it.",
                    targets=queries(
                        (f"max by ({by}) (cqrs_{op}_latency_samples{dc})", legend),
                    ),
                    unit=NONE,
                    thresholds=minimum_steps(settings.min_samples),
                    gridPos=size(12, 7),
                ),
                Graph(
                    title=f"{op.capitalize()} samples timed while the event loop was late",
                    description=f"Samples whose timing overlapped an event-loop lag above "
                    f"{format_duration(settings.loop_lag_flag)}: the exporter itself "
                    f"inflated them. Many: give the exporter more CPU before trusting the "
                    f"p99.",
                    targets=queries(
                        (f"max by ({by}) (cqrs_{op}_latency_lagged_samples{dc})", legend),
                    ),
                    unit=NONE,
                    gridPos=size(12, 7),
                ),
            ],
        )

    failures = Row(
        "Server side and failures",
        [
            Graph(
                title="Cassandra's own coordinator p99 per table",
                description="Cassandra's view of the same tables (system_views coordinator "
                "latency: a recent-biased decaying histogram), the worst node of each "
                "datacenter. Client p99 far above it: the time goes in the network, the "
                "driver or the exporter; both high: the nodes themselves are slow.",
                targets=queries(
                    (
                        "max by (operation, cassandra_datacenter, keyspace, table) "
                        f"(cqrs_server_coordinator_latency_p99_seconds{dc})",
                        "{{operation}} {{cassandra_datacenter}} {{keyspace}}.{{table}}",
                    )
                ),
                unit=SECONDS,
                gridPos=size(24, 8),
            ),
            Graph(
                title="Failed requests per second",
                description="Timed commands and queries that failed, by datacenter and reason. "
                "Each also counts at the timeout value in the histograms, so a datacenter "
                "that stops answering shows as slow, not as missing samples.",
                targets=queries(
                    (
                        "sum by (operation, cassandra_datacenter, reason) "
                        f"(rate(cqrs_request_failures_total{dc}[{RATE}]))",
                        "{{operation}} {{cassandra_datacenter}} {{reason}}",
                    )
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Missed slots per second",
                description="Fixed-rate slots with no request sent because earlier requests "
                "were still in flight past their timeout; each counts at the timeout, so a "
                "stalled datacenter cannot thin its own sample (no coordinated omission).",
                targets=queries(
                    (
                        "sum by (operation, cassandra_datacenter) "
                        f"(rate(cqrs_latency_missed_slots_total{dc}[{RATE}]))",
                        "{{operation}} {{cassandra_datacenter}}",
                    )
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
        ],
    )
    return CqrsDashboard(
        title="CQRS latency",
        uid="cqrs-latency",
        description="Command and query latency per datacenter and per declared read-model "
        "query, timed at a fixed rate without coordinated omission.",
        templating=core.Templating(
            [datasource_variable(), _instance_variable(), _datacenter_variable()]
        ),
        panels=layout(
            [
                operation_row(
                    "command",
                    t.command_latency_p99,
                    command_h,
                    "cassandra_datacenter",
                    "{{cassandra_datacenter}}",
                    "the probe's commands (writes)",
                ),
                operation_row(
                    "query",
                    t.query_latency_p99,
                    query_h,
                    "cassandra_datacenter, query",
                    "{{cassandra_datacenter}} {{query}}",
                    "the probe's reads and the declared read-model queries",
                ),
                failures,
            ]
        ),
    ).auto_panel_ids()


def exporter_health(settings: Settings) -> core.Dashboard:
    inst = _selector(INSTANCE)
    status = Row(
        "Exporter",
        [
            _state(
                "Cassandra answers",
                "Whether the exporter has a session and a datacenter answered its last "
                "reachability probe. DOWN: check the contact points, credentials and the "
                "network from the exporter to the cluster.",
                f"cqrs_up{inst}",
                "{{instance}}",
                6,
                5,
                states=UP_DOWN,
            ),
            _state(
                "Datacenters reachable",
                "Whether each datacenter answered the last reachability probe through its own "
                "execution profile. DOWN while Cassandra answers: that datacenter's nodes are "
                "down or unreachable from the exporter.",
                f"min by (cassandra_datacenter) (cqrs_datacenter_reachable{inst})",
                "{{cassandra_datacenter}}",
                10,
                5,
                states=UP_DOWN,
            ),
            StateStat(
                title="Version",
                description="Exporter and Python versions of each exporter instance.",
                targets=queries(
                    (
                        f"cqrs_exporter_build_info{inst}",
                        "{{instance}} {{version}} (Python {{python_version}})",
                    )
                ),
                textMode="name",
                colorMode="none",
                gridPos=size(8, 5),
            ),
        ],
    )
    probes = Row(
        "Probes",
        [
            _state(
                "Last run",
                "Whether each probe's last run succeeded. A probe that keeps failing leaves "
                "its metrics stale: see CqrsProbeFailing's runbook and the exporter's log, "
                "which names the probe and the cause.",
                f"min by (probe) (cqrs_probe_success{inst})",
                "{{probe}}",
                8,
                8,
                states=((0, "FAILED", RED), (1, "OK", GREEN)),
                orientation="horizontal",
            ),
            Graph(
                title="Time since last success",
                description="Seconds since each probe last succeeded. Rising steadily: the "
                "probe is failing or no longer runs, and what it measures is stale.",
                targets=queries(
                    (
                        "max by (probe) "
                        f"(time() - cqrs_probe_last_success_timestamp_seconds{inst})",
                        "{{probe}}",
                    )
                ),
                unit=SECONDS,
                gridPos=size(16, 8),
            ),
            Graph(
                title="Run duration",
                description="How long each probe's last run took. A probe near its timeout "
                "starts failing with reason timeout and skipping runs.",
                targets=queries(
                    (f"max by (probe) (cqrs_probe_duration_seconds{inst})", "{{probe}}")
                ),
                unit=SECONDS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Failed runs per second, by reason",
                description="timeout: the run exceeded its timeout; unavailable: too few "
                "replicas or no host answered; error: anything else (the log says what).",
                targets=queries(
                    (
                        f"sum by (probe, reason) (rate(cqrs_probe_failures_total{inst}[{RATE}]))",
                        "{{probe}} {{reason}}",
                    )
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Runs per second",
                description="Completed runs of each probe. Flat at zero: the scheduler "
                "stopped (liveness then fails and the exporter is restarted).",
                targets=queries(
                    (f"sum by (probe) (rate(cqrs_probe_runs_total{inst}[{RATE}]))", "{{probe}}")
                ),
                unit=OPS,
                gridPos=size(12, 8),
            ),
            Graph(
                title="Skipped runs",
                description="Runs skipped because the previous one was still going. Steady "
                "skips: the probe is slower than its interval; raise the interval or find out "
                "why Cassandra is slow.",
                targets=queries(
                    (
                        f"sum by (probe) (increase(cqrs_probe_skipped_runs_total{inst}[{RATE}]))",
                        "{{probe}}",
                    )
                ),
                unit=NONE,
                gridPos=size(12, 8),
            ),
        ],
    )
    loop = Row(
        "Event loop and health evaluation",
        [
            Graph(
                title="Event-loop lag p99 / p99.9",
                description=f"How late the exporter's event loop wakes from its timers. "
                f"Above {format_duration(settings.loop_lag_flag)} (the red line) the latency "
                f"probe flags its timings as inflated by the exporter itself: give it more "
                f"CPU.",
                targets=queries(
                    (
                        quantile("0.99", "cqrs_event_loop_lag_seconds", inst, "instance"),
                        "p99 {{instance}}",
                    ),
                    (
                        quantile("0.999", "cqrs_event_loop_lag_seconds", inst, "instance"),
                        "p99.9 {{instance}}",
                    ),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(settings.loop_lag_flag),
                gridPos=size(12, 7),
            ),
            Graph(
                title="Age of the health verdict",
                description="Seconds since /health was last evaluated; it is evaluated on a "
                "fixed cadence, so a rising age means the exporter is stuck.",
                targets=queries(
                    (
                        f"max by (instance) "
                        f"(time() - cqrs_health_last_evaluation_timestamp_seconds{inst})",
                        "{{instance}}",
                    )
                ),
                unit=SECONDS,
                gridPos=size(12, 7),
            ),
        ],
    )
    return CqrsDashboard(
        title="CQRS exporter",
        uid="cqrs-exporter",
        description="The exporter's own health: can it reach Cassandra, are its probes "
        "running and succeeding, is its event loop on time.",
        templating=core.Templating([datasource_variable(), _instance_variable()]),
        panels=layout([status, probes, loop]),
    ).auto_panel_ids()


DASHBOARDS: dict[str, Callable[[Settings], core.Dashboard]] = {
    "cqrs-overview": overview,
    "cqrs-replication": replication,
    "cqrs-read-models": read_models,
    "cqrs-latency": latency,
    "cqrs-exporter": exporter_health,
}
"""File stem -> dashboard; the stem is also the dashboard's uid."""
