"""The dashboards as Grafana reads them: current schema, datasource variable, ids, units, PromQL.

No Grafana server can be installed on this machine, so import is checked structurally: what
Grafana needs to import a dashboard without edits (a current schemaVersion, the datasource
as a variable referenced by every panel and query, unique ids, a valid grid), what an
operator needs (units, descriptions, thresholds), and that every query parses as PromQL.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.generate.panels import DATASOURCE, GRID_WIDTH, PERCENT_UNIT, SCHEMA_VERSION, SECONDS

REPO = Path(__file__).resolve().parents[2]
PATHS = sorted((REPO / "dashboards").glob("*.json"))
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}
# What the e2e test and this parse check put in for Grafana's variables.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$instance": ".*",
    "$datacenter": ".*",
    "$read_model": ".*",
}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.fixture(params=PATHS, ids=lambda p: p.stem)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_there_are_the_four_dashboards_of_the_issue_a_latency_one_and_an_slo_one() -> None:
    assert [p.stem for p in PATHS] == sorted(
        ["cqrs-overview", "cqrs-replication", "cqrs-read-models", "cqrs-exporter", "cqrs-latency",
         "cqrs-slo"]
    )


def test_uids_and_titles_are_unique_and_stable() -> None:
    dashboards = [load(p) for p in PATHS]
    assert [d["uid"] for d in dashboards] == [p.stem for p in PATHS]
    assert len({d["title"] for d in dashboards}) == len(dashboards)


def test_schema_version_is_current_and_nothing_needs_migrating(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] == SCHEMA_VERSION >= 36
    assert dashboard["rows"] == []  # pre-5.0 layout would be migrated
    assert {p["type"] for p in dashboard["panels"]} <= {"row", "timeseries", "stat"}
    assert dashboard["id"] is None  # Grafana assigns it on import
    assert "cqrs" in dashboard["tags"]


def test_datasource_is_a_variable_used_by_every_panel_and_query(
    dashboard: dict[str, Any],
) -> None:
    variables = dashboard["templating"]["list"]
    first = variables[0]
    assert (first["name"], first["type"], first["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for variable in variables[1:]:
        assert variable["datasource"] == DATASOURCE, variable["name"]
        assert re.fullmatch(r"label_values\(cqrs_\w+, \w+\)", variable["query"])
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


def test_every_variable_a_query_uses_is_defined(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]} | BUILTIN_VARIABLES
    for panel in panels(dashboard):
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= defined, (panel["title"], used - defined)


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= GRID_WIDTH, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_panel_has_a_unit_and_a_description(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        unit = panel["fieldConfig"]["defaults"]["unit"]
        assert unit, panel["title"]
        assert len(panel["description"]) > 40, panel["title"]
        exprs = " ".join(t["expr"] for t in panel["targets"])
        if re.search(r"_seconds(_bucket)?\b", exprs) and "time() -" not in exprs:
            assert unit == SECONDS, panel["title"]
        if re.search(r"_ratio(_lower|_upper)?\b", exprs):
            assert unit == PERCENT_UNIT, panel["title"]


def test_thresholds_are_in_grafanas_current_form(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None, panel["title"]  # the base step
        values = [s["value"] for s in steps[1:]]
        assert all(isinstance(v, int | float) for v in values), panel["title"]
        assert values == sorted(values), panel["title"]
        if panel["type"] == "timeseries" and values:
            assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert '"null"' not in json.dumps(dashboard)


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """promtool checks expressions offline when they are written as recording rules."""
    rules = []
    for path in PATHS:
        for panel in panels(load(path)):
            for target in panel["targets"]:
                rules.append(
                    {"record": f"dashboard:query:{len(rules)}", "expr": substitute(target["expr"])}
                )
    for path in PATHS:
        for variable in load(path)["templating"]["list"][1:]:
            metric = re.fullmatch(r"label_values\((\w+), \w+\)", variable["query"])
            assert metric is not None
            rules.append({"record": f"dashboard:query:{len(rules)}", "expr": metric[1]})
    file = tmp_path / "queries.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        ["/usr/bin/promtool", "check", "rules", str(file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
