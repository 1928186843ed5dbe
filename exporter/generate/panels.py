"""House defaults for the dashboards: small grafanalib subclasses and a grid layout.

Every query goes to the `$datasource` variable, every panel has a unit, thresholds are
drawn as a red line (graphs) or colour (stats), and the JSON is in Grafana's current
panel format, so `schemaVersion` can say so and Grafana imports it without migrating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib import core

SCHEMA_VERSION = 39
"""Grafana 10.4 / 11's dashboard schema; the panels below are written in that format."""

DATASOURCE_VARIABLE = "datasource"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
GRID_WIDTH = 24

GREEN = "green"
RED = "red"
ORANGE = "orange"
GREY = "text"

SECONDS = "s"
PERCENT_UNIT = "percentunit"
"""Ratios 0..1 shown as percentages."""
NONE = "none"
OPS = "ops"
"""Events per second."""
BYTES = "bytes"


def _datasource() -> dict[str, str]:
    return dict(DATASOURCE)


def threshold_steps(threshold: float | None) -> list[dict[str, Any]]:
    """Green below the threshold, red from it on (Grafana's `value: null` is the base step)."""
    steps: list[dict[str, Any]] = [{"color": GREEN, "value": None}]
    if threshold is not None:
        steps.append({"color": RED, "value": threshold})
    return steps


def minimum_steps(minimum: float) -> list[dict[str, Any]]:
    """Red below a minimum, green from it on (e.g. a sample count)."""
    return [{"color": RED, "value": None}, {"color": GREEN, "value": minimum}]


@attr.s
class Query(core.Target):
    """A PromQL query on the dashboard's datasource variable, in Grafana's current format."""

    def to_json_data(self) -> dict[str, Any]:
        return {
            "datasource": _datasource(),
            "editorMode": "code",
            "expr": self.expr,
            "instant": self.instant,
            "legendFormat": self.legendFormat,
            "range": not self.instant,
            "refId": self.refId,
        }


def queries(*pairs: tuple[str, str]) -> list[core.Target]:
    """`(expr, legend)` pairs as targets with refIds A, B, C..."""
    return [
        Query(expr=expr, legendFormat=legend, refId=chr(ord("A") + i))
        for i, (expr, legend) in enumerate(pairs)
    ]


@attr.s
class Graph(core.TimeSeries):
    """A time series with a table legend (last, max) and its threshold as a red line."""

    dataSource = attr.ib(factory=_datasource)
    legendDisplayMode = attr.ib(default="table")
    legendCalcs = attr.ib(factory=lambda: ["lastNotNull", "max"])
    tooltipMode = attr.ib(default="multi")
    tooltipSort = attr.ib(default="desc")
    thresholdsStyleMode = attr.ib(default="line")
    lineWidth = attr.ib(default=2)
    fillOpacity = attr.ib(default=10)
    thresholds = attr.ib(factory=lambda: threshold_steps(None))


@attr.s
class ValueStat(core.Stat):
    """The latest value, coloured green below its threshold and red from it on."""

    dataSource = attr.ib(factory=_datasource)
    color = attr.ib(factory=lambda: {"mode": "thresholds"})
    colorMode = attr.ib(default="background")
    graphMode = attr.ib(default="area")
    reduceCalc = attr.ib(default="lastNotNull")
    noValue = attr.ib(default="no data")
    textMode = attr.ib(default="auto")
    thresholds = attr.ib(factory=lambda: threshold_steps(None))


def state_mappings(states: Sequence[tuple[int, str, str]]) -> list[dict[str, Any]]:
    """Value mappings for a numeric state: `(value, text, colour)`."""
    return [
        {
            "type": "value",
            "options": {
                str(value): {"text": text, "color": color, "index": index}
                for index, (value, text, color) in enumerate(states)
            },
        }
    ]


@attr.s
class StateStat(core.Stat):
    """A state (e.g. UP/DEGRADED/DOWN) shown as its name on its colour."""

    dataSource = attr.ib(factory=_datasource)
    color = attr.ib(factory=lambda: {"mode": "thresholds"})
    colorMode = attr.ib(default="background")
    graphMode = attr.ib(default="none")
    reduceCalc = attr.ib(default="lastNotNull")
    noValue = attr.ib(default="no data")
    textMode = attr.ib(default="auto")
    thresholds = attr.ib(factory=lambda: threshold_steps(None))


def size(width: int, height: int) -> core.GridPos:
    """A panel's size; `layout` fills in its position."""
    return core.GridPos(h=height, w=width, x=0, y=0)


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right."""

    title: str
    panels: Sequence[core.Panel]


def layout(rows: Sequence[Row]) -> list[core.Panel]:
    """Place each row's header, then its panels left to right, wrapping at the grid width."""
    placed: list[core.Panel] = []
    y = 0
    for row in rows:
        placed.append(core.RowPanel(title=row.title, gridPos=core.GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            pos = panel.gridPos
            if x + pos.w > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            placed.append(attr.evolve(panel, gridPos=core.GridPos(h=pos.h, w=pos.w, x=x, y=y)))
            x += pos.w
            line_height = max(line_height, pos.h)
        y += line_height
    return placed


@attr.s
class Variable(core.Template):
    """A template variable whose `current` is what Grafana itself writes for its default."""

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        if self.type == "datasource":
            # `default` is Grafana's name for whichever Prometheus is the default data source.
            data["current"] = {"selected": False, "text": "default", "value": "default"}
        elif self.includeAll:
            data["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
            data["definition"] = self.query
        return data


def datasource_variable() -> core.Template:
    return Variable(
        name=DATASOURCE_VARIABLE,
        label="Data source",
        query="prometheus",
        type="datasource",
        hide=0,
        refresh=1,
    )


def label_variable(name: str, label: str, metric: str, metric_label: str) -> core.Template:
    """A multi-value variable from `label_values(metric, label)`, defaulting to All."""
    return Variable(
        name=name,
        label=label,
        query=f"label_values({metric}, {metric_label})",
        dataSource=_datasource(),
        type="query",
        includeAll=True,
        multi=True,
        # `.*` rather than the list of known values, so a new datacenter or read model
        # shows up without reloading the dashboard.
        allValue=".*",
        refresh=2,
        sort=1,
    )


@attr.s
class CqrsDashboard(core.Dashboard):
    """A dashboard of this exporter: tagged, linked to its siblings, current schema."""

    schemaVersion = attr.ib(default=SCHEMA_VERSION)
    editable = attr.ib(default=True)
    refresh = attr.ib(default="30s")
    timezone = attr.ib(default="browser")
    graphTooltip = attr.ib(default=core.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR)
    tags = attr.ib(factory=lambda: ["cqrs", "cassandra"])
    links = attr.ib(
        factory=lambda: [
            core.DashboardLink(
                title="CQRS dashboards",
                tags=["cqrs"],
                asDropdown=True,
                includeVars=True,
                keepTime=True,
                type="dashboards",
            )
        ]
    )
