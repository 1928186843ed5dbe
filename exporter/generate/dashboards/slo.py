"""CQRS SLOs: error budget remaining, burn rates per alert window, the SLIs, read-your-writes."""

from __future__ import annotations

from exporter import metric_catalogue as catalogue
from exporter.config import format_duration
from exporter.generate.dashboards.common import (
    INSTANCE,
    RATE,
    instance_variable,
    selector,
    state,
)
from exporter.generate.panels import (
    GREEN,
    PERCENT_UNIT,
    RED,
    SECONDS,
    Dashboard,
    Row,
    dashboard,
    datasource_variable,
    graph,
    label_variable,
    minimum_steps,
    queries,
    threshold_steps,
    value_stat,
)
from exporter.generate.settings import Settings
from exporter.generate.slo_rules import BUDGET_REMAINING, BURN_ALERTS, burn_rate

SLO = 'slo=~"$slo"'
BY = "slo, component"
LEGEND = "{{slo}} · {{component}}"


def slo_dashboard(settings: Settings) -> Dashboard:
    slo = selector(SLO)
    budget = f"min by ({BY}) ({BUDGET_REMAINING}{slo})"
    period = format_duration(settings.slo.period)
    budget_row = Row(
        "Error budget",
        [
            value_stat(
                title="Error budget remaining",
                description=f"Share of each SLO's error budget left over the {period} period: "
                "1 untouched, 0 spent, below 0 overspent (the objective is missed). Read "
                "docs/slo.md for choosing and changing objectives.",
                targets=queries((budget, LEGEND)),
                unit=PERCENT_UNIT,
                thresholds=minimum_steps(0.0),
                size=(8, 8),
            ),
            graph(
                title="Error budget remaining over time",
                description="How fast the budget goes: a steady slope down to 0 at the end of "
                "the period is a burn rate of 1.",
                targets=queries((budget, LEGEND)),
                unit=PERCENT_UNIT,
                thresholds=minimum_steps(0.0),
                size=(16, 8),
            ),
        ],
    )
    burns = Row(
        "Burn rates (the alerts' windows)",
        [
            graph(
                title=f"Burn rate over {burn.long} and {burn.short} ({burn.severity} above "
                f"{burn.factor:g}x)",
                description=f"Errors over each window as a multiple of what the objective "
                f"allows: 1 spends the budget exactly over the period. {burn.name} fires "
                f"while both windows are above {burn.factor:g}.",
                targets=queries(
                    (f"max by ({BY}) ({burn_rate(burn.long)}{slo})", f"{burn.long} {LEGEND}"),
                    (f"max by ({BY}) ({burn_rate(burn.short)}{slo})", f"{burn.short} {LEGEND}"),
                ),
                unit="x",
                thresholds=threshold_steps(burn.factor),
                size=(12, 8),
            )
            for burn in BURN_ALERTS
        ],
    )
    good = f"sum by ({BY}) (rate({catalogue.SLO_GOOD_SLICES.total}{slo}[{RATE}]))"
    total = f"sum by ({BY}) (rate({catalogue.SLO_SLICES.total}{slo}[{RATE}]))"
    slis = Row(
        "SLIs",
        [
            graph(
                title="Good time slices",
                description="Share of the health evaluations in which each check held (the "
                "time-slice SLIs). The sync-failure SLO counts sync checks instead: see the "
                "read models dashboard.",
                targets=queries((f"{good} / {total}", LEGEND)),
                unit=PERCENT_UNIT,
                size=(24, 8),
            ),
        ],
    )
    inst = selector(INSTANCE)
    pair = "source_datacenter, target_datacenter"
    freshness = Row(
        "Read-your-writes",
        [
            graph(
                title="Read-your-writes wait",
                description="How long after a command's acknowledgement a read in each read "
                "datacenter sees it with the given probability, from the sentinel "
                "visibilities of the freshness window (also at /freshness).",
                targets=queries(
                    (
                        f"max by ({pair}, confidence) "
                        f"({catalogue.READ_YOUR_WRITES_WAIT.name}{inst})",
                        "{{target_datacenter}} p{{confidence}}",
                    )
                ),
                unit=SECONDS,
                thresholds=threshold_steps(settings.thresholds.replication_lag),
                size=(16, 8),
            ),
            state(
                "Read from the write datacenter",
                "STALE while a read datacenter's replication lag is over its threshold (or "
                "unknown): a query service routes reads after a command to the write "
                "datacenter then.",
                f"max by (target_datacenter) ({catalogue.FRESHNESS_STALE.name}{inst})",
                "{{target_datacenter}}",
                (8, 8),
                ((0, "FRESH", GREEN), (1, "STALE", RED)),
            ),
        ],
    )
    return dashboard(
        title="CQRS SLOs",
        uid="cqrs-slo",
        description="Error budgets and burn rates of the SLOs on the thresholds, and the "
        "read-your-writes waits (generated by cqrs-exporter generate).",
        variables=[
            datasource_variable(),
            instance_variable(),
            label_variable("slo", "SLO", catalogue.SLO_OBJECTIVE.name, "slo"),
        ],
        rows=[budget_row, burns, slis, freshness],
    )
