"""CQRS exporter: can it reach Cassandra, are its probes running, is its event loop on time."""

from __future__ import annotations

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.dashboards.common import (
    INSTANCE,
    RATE,
    UP_DOWN,
    instance_variable,
    quantile,
    selector,
    state,
)
from exporter.generate.panels import (
    GREEN,
    NONE,
    OPS,
    RED,
    SECONDS,
    Dashboard,
    Row,
    dashboard,
    datasource_variable,
    graph,
    queries,
    state_stat,
    threshold_steps,
)
from exporter.generate.settings import Settings


def exporter_health(settings: Settings) -> Dashboard:
    inst = selector(INSTANCE)
    status = Row(
        "Exporter",
        [
            state(
                "Cassandra answers",
                "Whether the exporter has a session and a datacenter answered its last "
                "reachability probe. DOWN: check the contact points, credentials and the "
                "network from the exporter to the cluster.",
                f"{catalogue.UP.name}{inst}",
                "{{instance}}",
                (6, 5),
                UP_DOWN,
            ),
            state(
                "Datacenters reachable",
                "Whether each datacenter answered the last reachability probe through its own "
                "execution profile. DOWN while Cassandra answers: that datacenter's nodes are "
                "down or unreachable from the exporter.",
                f"min by (cassandra_datacenter) ({catalogue.DATACENTER_REACHABLE.name}{inst})",
                "{{cassandra_datacenter}}",
                (10, 5),
                UP_DOWN,
            ),
            state_stat(
                title="Version",
                description="Exporter and Python versions of each exporter instance.",
                targets=queries(
                    (
                        f"{catalogue.EXPORTER_BUILD.total}{inst}",
                        "{{instance}} {{version}} (Python {{python_version}})",
                    )
                ),
                text_mode="name",
                color_mode="none",
                size=(8, 5),
            ),
        ],
    )
    probes = Row(
        "Probes",
        [
            state(
                "Last run",
                "Whether each probe's last run succeeded. A probe that keeps failing leaves "
                "its metrics stale: see CqrsProbeFailing's runbook and the exporter's log, "
                "which names the probe and the cause.",
                f"min by (probe) ({catalogue.PROBE_SUCCESS.name}{inst})",
                "{{probe}}",
                (8, 8),
                ((0, "FAILED", RED), (1, "OK", GREEN)),
                orientation="horizontal",
            ),
            graph(
                title="Time since last success",
                description="Seconds since each probe last succeeded. Rising steadily: the "
                "probe is failing or no longer runs, and what it measures is stale.",
                targets=queries(
                    (
                        f"max by (probe) (time() - {catalogue.PROBE_LAST_SUCCESS.name}{inst})",
                        "{{probe}}",
                    )
                ),
                unit=SECONDS,
                size=(16, 8),
            ),
            graph(
                title="Run duration",
                description="How long each probe's last run took. A probe near its timeout "
                "starts failing with reason timeout and skipping runs.",
                targets=queries(
                    (f"max by (probe) ({catalogue.PROBE_DURATION.name}{inst})", "{{probe}}")
                ),
                unit=SECONDS,
                size=(12, 8),
            ),
            graph(
                title="Failed runs per second, by reason",
                description="timeout: the run exceeded its timeout; unavailable: too few "
                "replicas or no host answered; auth: Cassandra refused the credentials "
                "(cluster.auth); unauthorized: the role lacks a grant (cqrs-exporter grants); "
                "tls: the TLS handshake failed (cluster.tls); error: anything else (the log "
                "says what).",
                targets=queries(
                    (
                        "sum by (probe, reason) "
                        f"(rate({catalogue.PROBE_FAILURES.total}{inst}[{RATE}]))",
                        "{{probe}} {{reason}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
            graph(
                title="Runs per second",
                description="Completed runs of each probe. Flat at zero: the scheduler "
                "stopped (liveness then fails and the exporter is restarted).",
                targets=queries(
                    (
                        f"sum by (probe) (rate({catalogue.PROBE_RUNS.total}{inst}[{RATE}]))",
                        "{{probe}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
            graph(
                title="Skipped runs",
                description="Runs skipped because the previous one was still going. Steady "
                "skips: the probe is slower than its interval; raise the interval or find out "
                "why Cassandra is slow.",
                targets=queries(
                    (
                        f"sum by (probe) (increase({catalogue.PROBE_SKIPPED.total}{inst}[{RATE}]))",
                        "{{probe}}",
                    )
                ),
                unit=NONE,
                size=(12, 8),
            ),
        ],
    )
    lag = catalogue.EVENT_LOOP_LAG
    loop = Row(
        "Event loop and health evaluation",
        [
            graph(
                title="Event-loop lag p99 / p99.9",
                description=f"How late the exporter's event loop wakes from its timers. "
                f"Above {format_duration(settings.loop_lag_flag)} (the red line) the latency "
                f"probe flags its timings as inflated by the exporter itself: give it more "
                f"CPU.",
                targets=queries(
                    (quantile("0.99", lag, inst, "instance"), "p99 {{instance}}"),
                    (quantile("0.999", lag, inst, "instance"), "p99.9 {{instance}}"),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(settings.loop_lag_flag),
                size=(12, 7),
            ),
            graph(
                title="Age of the health verdict",
                description="Seconds since /health was last evaluated; it is evaluated on a "
                "fixed cadence, so a rising age means the exporter is stuck.",
                targets=queries(
                    (
                        "max by (instance) "
                        f"(time() - {catalogue.HEALTH_LAST_EVALUATION.name}{inst})",
                        "{{instance}}",
                    )
                ),
                unit=SECONDS,
                size=(12, 7),
            ),
        ],
    )
    requests = catalogue.BUDGET_REQUESTS
    budget = Row(
        "Request budget and shards",
        [
            graph(
                title="Requests per datacenter against the budget",
                description="Requests a second each exporter sends to each datacenter, all "
                "probes together, beside its budget (each shard has its own). The read "
                "models get what the replication, latency and reachability probes leave.",
                targets=queries(
                    (
                        f"sum by (instance, cassandra_datacenter) "
                        f"(rate({requests.total}{inst}[{RATE}]))",
                        "{{instance}} {{cassandra_datacenter}}",
                    ),
                    (
                        f"max by (cassandra_datacenter) "
                        f"({catalogue.BUDGET_REQUESTS_PER_SECOND.name}{inst})",
                        "budget {{cassandra_datacenter}}",
                    ),
                ),
                unit=OPS,
                size=(8, 7),
            ),
            graph(
                title="Read-model schedule stretch",
                description="How far the read models' schedules are stretched to fit the "
                "budget (1: at their intervals). Above 1 for long: raise the budget, lengthen "
                "the intervals or shard the read models over more exporters.",
                targets=queries(
                    (
                        f"max by (cassandra_datacenter) "
                        f"({catalogue.BUDGET_SCHEDULE_STRETCH.name}{inst})",
                        "{{cassandra_datacenter}}",
                    )
                ),
                unit=NONE,
                size=(8, 7),
            ),
            graph(
                title="Series dropped by max_series",
                description="Series each exporter left out of /metrics to stay under "
                "max_series: the series of the read models past the cap, by name.",
                targets=queries(
                    (
                        f"max by (instance) ({catalogue.EXPORTER_SERIES_DROPPED.name}{inst})",
                        "{{instance}}",
                    )
                ),
                unit=NONE,
                size=(8, 7),
            ),
        ],
    )
    return dashboard(
        title="CQRS exporter",
        uid="cqrs-exporter",
        description="The exporter's own health: can it reach Cassandra, are its probes "
        "running and succeeding, is its event loop on time.",
        variables=[datasource_variable(), instance_variable()],
        rows=[status, probes, loop, budget],
    )
