"""CQRS latency: commands and queries per datacenter, two ways, and what failed or was missed."""

from __future__ import annotations

from dataclasses import dataclass

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.dashboards.common import (
    DATACENTER,
    INSTANCE,
    RATE,
    datacenter_variable,
    instance_variable,
    quantile,
    selector,
)
from exporter.generate.panels import (
    NONE,
    OPS,
    SECONDS,
    Dashboard,
    Row,
    dashboard,
    datasource_variable,
    graph,
    minimum_steps,
    queries,
    threshold_steps,
)
from exporter.generate.rules import LATENCY_WINDOW
from exporter.generate.settings import Settings
from exporter.metric_catalogue import MetricSpec


@dataclass(frozen=True)
class Operation:
    """Commands or queries: the histogram and the in-process window's gauges of one of them."""

    name: str
    """`command` or `query`."""
    duration: MetricSpec
    p99: MetricSpec
    quantiles: MetricSpec
    samples: MetricSpec
    lagged_samples: MetricSpec
    by: str
    """The labels its series are told apart by."""
    legend: str
    what: str
    """What is timed, as a description says it."""


COMMANDS = Operation(
    "command",
    catalogue.COMMAND_DURATION,
    catalogue.COMMAND_LATENCY_P99,
    catalogue.COMMAND_LATENCY_WINDOW,
    catalogue.COMMAND_LATENCY_SAMPLES,
    catalogue.COMMAND_LATENCY_LAGGED_SAMPLES,
    "cassandra_datacenter",
    "{{cassandra_datacenter}}",
    "the probe's commands (writes)",
)
QUERIES = Operation(
    "query",
    catalogue.QUERY_DURATION,
    catalogue.QUERY_LATENCY_P99,
    catalogue.QUERY_LATENCY_WINDOW,
    catalogue.QUERY_LATENCY_SAMPLES,
    catalogue.QUERY_LATENCY_LAGGED_SAMPLES,
    "cassandra_datacenter, query",
    "{{cassandra_datacenter}} {{query}}",
    "the probe's reads and the declared read-model queries",
)


def _operation_row(settings: Settings, op: Operation, threshold: float) -> Row:
    dc = selector(INSTANCE, DATACENTER)
    by, legend = op.by, op.legend
    title = op.name.capitalize()
    return Row(
        f"{title}s",
        [
            graph(
                title=f"{title} p99: histogram and in-process",
                description=f"The p99 of {op.what} two ways: from the Prometheus histogram "
                f"over {LATENCY_WINDOW} (what the alert judges) and from the exporter's "
                f"in-process HDR histogram over its window (what /health judges). They "
                f"agree to within a bucket near the {format_duration(threshold)} threshold "
                f"(the red line); if they do not, look at the samples panel.",
                targets=queries(
                    (
                        quantile("0.99", op.duration, dc, by, LATENCY_WINDOW),
                        f"histogram {legend}",
                    ),
                    (f"max by ({by}) ({op.p99.name}{dc})", f"in-process {legend}"),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(threshold),
                size=(12, 8),
            ),
            graph(
                title=f"{title} latency quantiles",
                description="p50, p99, p99.9 and the maximum over the exporter's window "
                '(quantile="1" is the maximum). A maximum at the timeout means '
                "requests timed out.",
                targets=queries(
                    (
                        f"max by ({by}, quantile) ({op.quantiles.name}{dc})",
                        f"{legend} q={{{{quantile}}}}",
                    ),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(threshold),
                size=(12, 8),
            ),
            graph(
                title=f"{title} samples in the window",
                description=f"Samples behind the in-process p99. Below "
                f"{settings.min_samples} (the red line) the p99 is 'insufficient data' in "
                f"/health and the alert does not judge it.",
                targets=queries((f"max by ({by}) ({op.samples.name}{dc})", legend)),
                unit=NONE,
                thresholds=minimum_steps(settings.min_samples),
                size=(12, 7),
            ),
            graph(
                title=f"{title} samples timed while the event loop was late",
                description=f"Samples whose timing overlapped an event-loop lag above "
                f"{format_duration(settings.loop_lag_flag)}: the exporter itself "
                f"inflated them. Many: give the exporter more CPU before trusting the "
                f"p99.",
                targets=queries((f"max by ({by}) ({op.lagged_samples.name}{dc})", legend)),
                unit=NONE,
                size=(12, 7),
            ),
        ],
    )


def _failures_row() -> Row:
    dc = selector(INSTANCE, DATACENTER)
    return Row(
        "Server side and failures",
        [
            graph(
                title="Cassandra's own coordinator p99 per table",
                description="Cassandra's view of the same tables (system_views coordinator "
                "latency: a recent-biased decaying histogram), the worst node of each "
                "datacenter. Client p99 far above it: the time goes in the network, the "
                "driver or the exporter; both high: the nodes themselves are slow.",
                targets=queries(
                    (
                        "max by (operation, cassandra_datacenter, keyspace, table) "
                        f"({catalogue.SERVER_COORDINATOR_LATENCY_P99.name}{dc})",
                        "{{operation}} {{cassandra_datacenter}} {{keyspace}}.{{table}}",
                    )
                ),
                unit=SECONDS,
                size=(24, 8),
            ),
            graph(
                title="Failed requests per second",
                description="Timed commands and queries that failed, by datacenter and reason. "
                "Each also counts at the timeout value in the histograms, so a datacenter "
                "that stops answering shows as slow, not as missing samples.",
                targets=queries(
                    (
                        "sum by (operation, cassandra_datacenter, reason) "
                        f"(rate({catalogue.REQUEST_FAILURES.total}{dc}[{RATE}]))",
                        "{{operation}} {{cassandra_datacenter}} {{reason}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
            graph(
                title="Missed slots per second",
                description="Fixed-rate slots with no request sent because earlier requests "
                "were still in flight past their timeout; each counts at the timeout, so a "
                "stalled datacenter cannot thin its own sample (no coordinated omission).",
                targets=queries(
                    (
                        "sum by (operation, cassandra_datacenter) "
                        f"(rate({catalogue.LATENCY_MISSED_SLOTS.total}{dc}[{RATE}]))",
                        "{{operation}} {{cassandra_datacenter}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
        ],
    )


def latency(settings: Settings) -> Dashboard:
    t = settings.thresholds
    return dashboard(
        title="CQRS latency",
        uid="cqrs-latency",
        description="Command and query latency per datacenter and per declared read-model "
        "query, timed at a fixed rate without coordinated omission.",
        variables=[datasource_variable(), instance_variable(), datacenter_variable()],
        rows=[
            _operation_row(settings, COMMANDS, t.command_latency_p99),
            _operation_row(settings, QUERIES, t.query_latency_p99),
            _failures_row(),
        ],
    )
