"""CQRS replication: from the write datacenter to each read one, and Cassandra's backlog."""

from __future__ import annotations

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.dashboards.common import (
    BY_PAIR,
    INSTANCE,
    PAIR,
    RATE,
    TARGET_DATACENTER,
    instance_variable,
    quantile,
    selector,
)
from exporter.generate.panels import (
    BYTES,
    NONE,
    OPS,
    SECONDS,
    Dashboard,
    Row,
    dashboard,
    datasource_variable,
    graph,
    label_variable,
    queries,
    threshold_steps,
)
from exporter.generate.settings import Settings
from exporter.metric_catalogue import MetricSpec


def replication(settings: Settings) -> Dashboard:
    t = settings.thresholds
    target = selector(INSTANCE, TARGET_DATACENTER)
    replication_h = format_duration(t.replication_lag)
    visibility = catalogue.REPLICATION_VISIBILITY

    def by_pair(spec: MetricSpec) -> str:
        return f"max by ({BY_PAIR}) ({spec.name}{target})"

    lag = Row(
        "Replication lag",
        [
            graph(
                title="Replication lag",
                description=f"How long after acknowledgement in the write datacenter a "
                f"write becomes readable in each read datacenter, on the exporter's own "
                f"clock: it keeps growing while nothing arrives. The least and most lines "
                f"bracket the truth (the oldest unseen sentinel's age at its latest miss, the "
                f"newest seen one's age). "
                f"Above {replication_h} (the red line): see the runbook of "
                f"CqrsReplicationLagHigh.",
                targets=queries(
                    (by_pair(catalogue.REPLICATION_LAG), PAIR),
                    (by_pair(catalogue.REPLICATION_LAG_LOWER_BOUND), "least " + PAIR),
                    (by_pair(catalogue.REPLICATION_LAG_UPPER_BOUND), "most " + PAIR),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                size=(24, 9),
            ),
            graph(
                title="Sentinel visibility p50 / p99",
                description="How long completed sentinels took to become visible. A p99 "
                "creeping towards the threshold warns before the lag alert does.",
                targets=queries(
                    (quantile("0.5", visibility, target, BY_PAIR), "p50 " + PAIR),
                    (quantile("0.99", visibility, target, BY_PAIR), "p99 " + PAIR),
                ),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                size=(12, 8),
            ),
            graph(
                title="Lag resolution",
                description="Width of the interval (last miss to first sighting) each lag "
                "estimate is the midpoint of: lags closer than this cannot be told apart. "
                "Lower the poll interval to narrow it.",
                targets=queries((by_pair(catalogue.REPLICATION_LAG_RESOLUTION), PAIR)),
                unit=SECONDS,
                size=(12, 8),
            ),
        ],
    )
    losses = Row(
        "Lost sentinels and failed reads",
        [
            graph(
                title="Lost sentinels",
                description=f"Sentinels not readable in a read datacenter within "
                f"{format_duration(settings.sentinel_timeout)}. Any loss means that "
                f"datacenter did not receive writes at all: see the runbook of "
                f"CqrsReplicationSentinelsLost.",
                targets=queries(
                    (
                        f"sum by ({BY_PAIR}) "
                        f"(increase({catalogue.REPLICATION_SENTINELS_LOST.total}{target}[{RATE}]))",
                        PAIR,
                    )
                ),
                unit=NONE,
                size=(12, 8),
            ),
            graph(
                title="Failed visibility reads per second, by reason",
                description="Reads of a sentinel (or heartbeat) in a read datacenter that "
                "failed or timed out; each counts as a miss, so the lag keeps growing. "
                "timeout or unavailable: that datacenter's node is slow or down; auth, "
                "unauthorized or tls: the exporter's access (credentials, grants, TLS).",
                targets=queries(
                    (
                        f"sum by ({BY_PAIR}, reason) "
                        f"(rate({catalogue.REPLICATION_READ_FAILURES.total}{target}[{RATE}]))",
                        PAIR + " {{reason}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
            graph(
                title="Sentinels written per second",
                description="Sentinels acknowledged in the write datacenter. Flat at zero: "
                "the writer exporter cannot write (see CqrsProbeFailing), and no lag can be "
                "measured.",
                targets=queries(
                    (
                        "sum by (source_datacenter) "
                        f"(rate({catalogue.REPLICATION_SENTINELS_WRITTEN.total}"
                        f"{selector(INSTANCE)}[{RATE}]))",
                        "{{source_datacenter}}",
                    )
                ),
                unit=OPS,
                size=(12, 8),
            ),
            graph(
                title="Heartbeat age (regional exporters)",
                description="Age of the writer's newest heartbeat as seen by an exporter in a "
                "read region, from the heartbeat's write time. It compares two clocks (clock "
                "skew adds to it) and includes up to one writer interval. Empty unless a "
                "regional exporter runs.",
                targets=queries((by_pair(catalogue.REPLICATION_HEARTBEAT_AGE), PAIR)),
                unit=SECONDS,
                thresholds=threshold_steps(t.replication_lag),
                size=(12, 8),
            ),
        ],
    )
    backlog = Row(
        "Cassandra's replication backlog",
        [
            graph(
                title="Pending hint files",
                description="Hints the write datacenter's nodes hold for nodes of each read "
                "datacenter: writes those replicas missed, replayed when they come back "
                "(within max_hint_window; after longer outages run a repair).",
                targets=queries((by_pair(catalogue.REPLICATION_HINTS_PENDING), PAIR)),
                unit=NONE,
                size=(8, 8),
            ),
            graph(
                title="Internode messages queued",
                description="Messages queued on the write datacenter's nodes toward each read "
                "datacenter. A queue that keeps growing: the link or the remote nodes "
                "cannot keep up.",
                targets=queries((by_pair(catalogue.REPLICATION_INTERNODE_PENDING_MESSAGES), PAIR)),
                unit=NONE,
                size=(8, 8),
            ),
            graph(
                title="Internode bytes queued",
                description="Bytes queued on the write datacenter's nodes toward each read "
                "datacenter.",
                targets=queries((by_pair(catalogue.REPLICATION_INTERNODE_PENDING_BYTES), PAIR)),
                unit=BYTES,
                size=(8, 8),
            ),
        ],
    )
    return dashboard(
        title="CQRS replication",
        uid="cqrs-replication",
        description="Cross-datacenter replication from the write datacenter to each read "
        "datacenter, measured with sentinels on one clock, and Cassandra's own backlog.",
        variables=[
            datasource_variable(),
            instance_variable(),
            label_variable(
                "datacenter",
                "Read datacenter",
                catalogue.REPLICATION_LAG.name,
                "target_datacenter",
            ),
        ],
        rows=[lag, losses, backlog],
    )
