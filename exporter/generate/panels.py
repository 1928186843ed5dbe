"""House defaults for the dashboards: typed builders of grafanalib panels and a grid layout.

Every query goes to the `$datasource` variable, every panel has a unit, thresholds are
drawn as a red line (graphs) or colour (stats), and the JSON is in Grafana's current
panel format, so `schemaVersion` can say so and Grafana imports it without migrating.

grafanalib has no type hints, so its objects are `Any` here; the builders below are the
only callers of its constructors, and take typed arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import attr
from grafanalib import core

Panel: TypeAlias = Any
"""A grafanalib panel (`core.TimeSeries`, `core.Stat`, `core.RowPanel`)."""
Dashboard: TypeAlias = Any
"""A grafanalib `core.Dashboard`."""
Steps: TypeAlias = list[dict[str, Any]]
"""Grafana threshold steps: `{"color": ..., "value": ...}`, the first with `value: None`."""
Size: TypeAlias = tuple[int, int]
"""A panel's width (of GRID_WIDTH) and height, in grid units; `layout` places it."""
States: TypeAlias = Sequence[tuple[int, str, str]]
"""A numeric state's `(value, text, colour)`s."""

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


def threshold_steps(threshold: float | None) -> Steps:
    """Green below the threshold, red from it on (Grafana's `value: null` is the base step)."""
    steps: Steps = [{"color": GREEN, "value": None}]
    if threshold is not None:
        steps.append({"color": RED, "value": threshold})
    return steps


def minimum_steps(minimum: float) -> Steps:
    """Red below a minimum, green from it on (e.g. a sample count)."""
    return [{"color": RED, "value": None}, {"color": GREEN, "value": minimum}]


@dataclass(frozen=True)
class Query:
    """A PromQL query on the dashboard's datasource variable, in Grafana's current format."""

    expr: str
    legend: str
    ref_id: str
    instant: bool = False

    def to_json_data(self) -> dict[str, Any]:
        return {
            "datasource": _datasource(),
            "editorMode": "code",
            "expr": self.expr,
            "instant": self.instant,
            "legendFormat": self.legend,
            "range": not self.instant,
            "refId": self.ref_id,
        }


def queries(*pairs: tuple[str, str]) -> list[Query]:
    """`(expr, legend)` pairs as targets with refIds A, B, C..."""
    return [
        Query(expr=expr, legend=legend, ref_id=chr(ord("A") + i))
        for i, (expr, legend) in enumerate(pairs)
    ]


def _grid(size: Size, x: int = 0, y: int = 0) -> Any:
    width, height = size
    return core.GridPos(h=height, w=width, x=x, y=y)


def graph(
    *,
    title: str,
    description: str,
    targets: list[Query],
    unit: str,
    size: Size,
    thresholds: Steps | None = None,
) -> Panel:
    """A time series with a table legend (last, max) and its threshold as a red line."""
    return core.TimeSeries(
        title=title,
        description=description,
        targets=targets,
        unit=unit,
        gridPos=_grid(size),
        thresholds=threshold_steps(None) if thresholds is None else thresholds,
        dataSource=_datasource(),
        legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        tooltipSort="desc",
        thresholdsStyleMode="line",
        lineWidth=2,
        fillOpacity=10,
    )


def _stat(
    *,
    title: str,
    description: str,
    targets: list[Query],
    size: Size,
    graph_mode: str,
    **fields: Any,
) -> Panel:
    return core.Stat(
        title=title,
        description=description,
        targets=targets,
        gridPos=_grid(size),
        graphMode=graph_mode,
        dataSource=_datasource(),
        color={"mode": "thresholds"},
        reduceCalc="lastNotNull",
        noValue="no data",
        **fields,
    )


def value_stat(
    *,
    title: str,
    description: str,
    targets: list[Query],
    unit: str,
    size: Size,
    thresholds: Steps | None = None,
) -> Panel:
    """The latest value, coloured green below its threshold and red from it on."""
    return _stat(
        title=title,
        description=description,
        targets=targets,
        size=size,
        graph_mode="area",
        format=unit,
        thresholds=threshold_steps(None) if thresholds is None else thresholds,
        colorMode="background",
        textMode="auto",
    )


def state_mappings(states: States) -> list[dict[str, Any]]:
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


def state_stat(
    *,
    title: str,
    description: str,
    targets: list[Query],
    size: Size,
    states: States = (),
    text_mode: str = "auto",
    color_mode: str = "background",
    orientation: str = "auto",
) -> Panel:
    """A state (e.g. UP/DEGRADED/DOWN) shown as its name on its colour; without `states`,
    the series' own text (`text_mode="name"`: its legend)."""
    return _stat(
        title=title,
        description=description,
        targets=targets,
        size=size,
        graph_mode="none",
        mappings=state_mappings(states) if states else [],
        thresholds=threshold_steps(None),
        colorMode=color_mode,
        textMode=text_mode,
        orientation=orientation,
    )


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right."""

    title: str
    panels: Sequence[Panel]


def layout(rows: Sequence[Row]) -> list[Panel]:
    """Place each row's header, then its panels left to right, wrapping at the grid width."""
    placed: list[Panel] = []
    y = 0
    for row in rows:
        placed.append(core.RowPanel(title=row.title, gridPos=_grid((GRID_WIDTH, 1), y=y)))
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            width: int = panel.gridPos.w
            height: int = panel.gridPos.h
            if x + width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            placed.append(attr.evolve(panel, gridPos=_grid((width, height), x, y)))
            x += width
            line_height = max(line_height, height)
        y += line_height
    return placed


@dataclass(frozen=True)
class Variable:
    """A template variable whose `current` is what Grafana itself writes for its default."""

    template: Any
    """The grafanalib `core.Template` it is written from."""

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.template.to_json_data()
        if self.template.type == "datasource":
            # `default` is Grafana's name for whichever Prometheus is the default data source.
            data["current"] = {"selected": False, "text": "default", "value": "default"}
        elif self.template.includeAll:
            data["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
            data["definition"] = self.template.query
        return data


def datasource_variable() -> Variable:
    return Variable(
        core.Template(
            name=DATASOURCE_VARIABLE,
            label="Data source",
            query="prometheus",
            type="datasource",
            hide=0,
            refresh=1,
        )
    )


def label_variable(name: str, label: str, metric: str, metric_label: str) -> Variable:
    """A multi-value variable from `label_values(metric, label)`, defaulting to All."""
    return Variable(
        core.Template(
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
    )


def dashboard(
    *, title: str, uid: str, description: str, variables: Sequence[Variable], rows: Sequence[Row]
) -> Dashboard:
    """A dashboard of this exporter: tagged, linked to its siblings, current schema."""
    return core.Dashboard(
        title=title,
        uid=uid,
        description=description,
        templating=core.Templating(list(variables)),
        panels=layout(rows),
        schemaVersion=SCHEMA_VERSION,
        editable=True,
        refresh="30s",
        timezone="browser",
        graphTooltip=core.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        tags=["cqrs", "cassandra"],
        links=[
            core.DashboardLink(
                title="CQRS dashboards",
                tags=["cqrs"],
                asDropdown=True,
                includeVars=True,
                keepTime=True,
                type="dashboards",
            )
        ],
    ).auto_panel_ids()
