"""What the dashboards share: their variables, the health-state encoding and the quantiles."""

from __future__ import annotations

from exporter import metric_catalogue as catalogue
from exporter.generate.panels import (
    GREEN,
    GREY,
    ORANGE,
    RED,
    Panel,
    Size,
    States,
    Variable,
    label_variable,
    queries,
    state_stat,
)
from exporter.metric_catalogue import MetricSpec

INSTANCE = 'instance=~"$instance"'
DATACENTER = 'cassandra_datacenter=~"$datacenter"'
TARGET_DATACENTER = 'target_datacenter=~"$datacenter"'
READ_MODEL = 'read_model=~"$read_model"'
RATE = "$__rate_interval"

# Health states in /health's order of severity, encoded so that max() is the worst.
HEALTH_STATES = ((0, "UNKNOWN", GREY), (1, "UP", GREEN), (2, "DEGRADED", ORANGE), (3, "DOWN", RED))
UP_DOWN = ((0, "DOWN", RED), (1, "UP", GREEN))
PAIR = "{{source_datacenter}} → {{target_datacenter}}"
"""The legend of a replication path."""
BY_PAIR = ", ".join(catalogue.PAIR)


def selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def health_state(spec: MetricSpec, matchers: str, by: str = "") -> str:
    """The worst current state among a health state set's series, as 0..3 (HEALTH_STATES)."""
    arms = " or ".join(
        f'({spec.name}{{{matchers}, status="{name}"}} == 1) * {value}'
        for value, name, _ in HEALTH_STATES
    )
    grouping = f" by ({by})" if by else ""
    return f"max{grouping} ({arms})"


def quantile(q: str, spec: MetricSpec, selector: str, by: str, window: str = RATE) -> str:
    """A quantile of a histogram over rate()d buckets (never of the cumulative buckets)."""
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({spec.bucket}{selector}[{window}])))"


def instance_variable() -> Variable:
    return label_variable("instance", "Exporter", catalogue.EXPORTER_BUILD.total, "instance")


def datacenter_variable() -> Variable:
    return label_variable(
        "datacenter", "Datacenter", catalogue.DATACENTER_REACHABLE.name, "cassandra_datacenter"
    )


def read_model_variable() -> Variable:
    return label_variable(
        "read_model", "Read model", catalogue.READ_MODEL_SYNC_LAG.name, "read_model"
    )


def state(
    title: str,
    description: str,
    expr: str,
    legend: str,
    size: Size,
    states: States = HEALTH_STATES,
    *,
    text_mode: str = "auto",
    orientation: str = "auto",
) -> Panel:
    """One query's state, shown as its name on its colour."""
    return state_stat(
        title=title,
        description=description,
        targets=queries((expr, legend)),
        size=size,
        states=states,
        text_mode=text_mode,
        orientation=orientation,
    )
