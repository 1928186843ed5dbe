"""Every metric the generated rules and dashboards use is in the catalogue, with its labels.

Each expression of the rule files (the recording rules' as well as the alerts') and each
dashboard query is parsed as PromQL. Every series it selects must be a sample of a metric in
exporter/metric_catalogue.py, a series a recording rule records, or Prometheus' own `up`;
every label it matches on (`{...}`), groups by (`by`/`without`) or joins on (`on`/`ignoring`)
must be one that series carries: the metric's labels, an info's value labels, `le` on a
histogram's buckets, `quantile` on a summary's quantiles, and the `job` and `instance`
Prometheus adds to every scraped sample.
The labels a legend or an alert's text names must be among those the expression returns.

And every family the exporter builds comes from the catalogue: no `*MetricFamily(` call
outside it, and no metric name typed into the generators.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml

from exporter import metric_catalogue as catalogue
from exporter.generate.rules import alert_rules
from exporter.generate.settings import Settings
from exporter.metric_catalogue import MetricType, by_sample

REPO = Path(__file__).resolve().parents[2]
CATALOGUE_FILE = REPO / "exporter" / "metric_catalogue.py"
NOT_CATALOGUED = "is not in exporter/metric_catalogue.py"
RULE_FILES = sorted((REPO / "alerts").glob("*.rules.yaml"))
DASHBOARD_FILES = sorted((REPO / "dashboards").glob("*.json"))

TARGET_LABELS = frozenset({"job", "instance"})
"""What Prometheus attaches to every sample it scrapes."""
PROMETHEUS_SERIES = {"up": TARGET_LABELS}
"""Series Prometheus itself writes for each target."""
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
"""Grafana's range variables, which are not PromQL; the others only appear in label values."""
LABEL_VALUES = re.compile(r"label_values\((\w+), (\w+)\)")
TEMPLATE_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
"""A legend's `{{label}}`."""
ANNOTATION_LABEL = re.compile(r"\$labels\.(\w+)")
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
KEEP_SERIES = {"topk", "bottomk", "limitk", "limit_ratio"}
"""Aggregations that return some of their input series unchanged."""

Labels = frozenset[str]


@dataclass(frozen=True)
class Query:
    file: str
    """Where the expression is written, relative to the repository."""
    where: str
    """Which rule or panel it belongs to."""
    expr: str
    text: str = ""
    """A dashboard query's legend, or an alert's summary and description."""


@dataclass(frozen=True)
class Problem:
    query: Query
    metric: str
    message: str

    def __str__(self) -> str:
        expr = " ".join(self.query.expr.split())
        return f"{self.query.file}: {self.query.where}: `{expr}`: {self.metric} {self.message}"


# --- what the generated files hold ------------------------------------------------------------


def rule_queries(path: Path) -> list[Query]:
    file = str(path.relative_to(REPO))
    found = []
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                found.append(Query(file, f"recording rule {rule['record']}", rule["expr"]))
            else:
                text = " ".join(rule.get("annotations", {}).values())
                found.append(Query(file, f"alert {rule['alert']}", rule["expr"], text))
    return found


def recording_rules() -> list[tuple[str, str]]:
    """Each recorded series' name and expression, in the order Prometheus evaluates them."""
    return [
        (rule["record"], rule["expr"])
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


def dashboard_queries(path: Path) -> list[Query]:
    file = str(path.relative_to(REPO))
    dashboard = json.loads(path.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_RANGES.items():
                expr = expr.replace(variable, value)
            where = f"panel {panel['title']!r} query {target['refId']}"
            found.append(Query(file, where, expr, target.get("legendFormat", "")))
    return found


def dashboard_variables(path: Path) -> list[tuple[Query, str, str]]:
    """Each query variable's `label_values(metric, label)`, as (query, metric, label)."""
    file = str(path.relative_to(REPO))
    found = []
    for variable in json.loads(path.read_text())["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.fullmatch(variable["query"])
        query = Query(file, f"variable {variable['name']!r}", variable["query"])
        assert match is not None, f"{query.file}: {query.where}: not label_values(metric, label)"
        found.append((query, match[1], match[2]))
    return found


# --- the labels of a series and of an expression ----------------------------------------------


def catalogued_labels(sample: str) -> Labels | None:
    spec = by_sample(sample)
    if spec is None:
        return None
    labels = set(spec.labels) | set(spec.value_labels) | TARGET_LABELS
    if spec.type is MetricType.HISTOGRAM and sample == spec.bucket:
        labels.add("le")
    if spec.type is MetricType.SUMMARY and sample == spec.name:
        labels.add("quantile")
    return frozenset(labels)


def selector_name(node: promql.VectorSelector) -> str:
    if node.name:
        return node.name
    names = [m.value for m in node.matchers.matchers if m.name == "__name__"]
    return names[0] if names else "{...}"


class Scope:
    """The series an expression may select, with the labels each carries."""

    def __init__(self) -> None:
        self.recorded: dict[str, Labels] = {}

    def record(self, name: str, expr: str) -> None:
        labels = self.labels(promql.parse(expr))
        assert labels is not None, f"recording rule {name} records no series: {expr}"
        self.recorded[name] = labels

    def series(self, name: str) -> Labels | None:
        if name in self.recorded:
            return self.recorded[name]
        if name in PROMETHEUS_SERIES:
            return PROMETHEUS_SERIES[name]
        return catalogued_labels(name)

    def labels(self, node: Any) -> Labels | None:
        """The labels of the series `node` returns; None for a scalar or an unknown metric."""
        if isinstance(node, promql.VectorSelector):
            return self.series(selector_name(node))
        if isinstance(node, promql.MatrixSelector):
            return self.labels(node.vector_selector)
        if isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
            return self.labels(node.expr)
        if isinstance(node, promql.NumberLiteral | promql.StringLiteral):
            return None
        if isinstance(node, promql.AggregateExpr):
            return self._aggregate(node)
        if isinstance(node, promql.Call):
            return self._call(node)
        if isinstance(node, promql.BinaryExpr):
            return self._binary(node)
        raise AssertionError(f"no rule for the labels of {type(node).__name__}: {node}")

    def _aggregate(self, node: promql.AggregateExpr) -> Labels | None:
        inner = self.labels(node.expr)
        op = str(node.op)
        if op in KEEP_SERIES:
            return inner
        modifier = node.modifier
        grouping: Labels = frozenset(modifier.labels if modifier else ())
        if op == "count_values" and isinstance(node.param, promql.StringLiteral):
            grouping |= {node.param.val}
        if modifier is not None and modifier.type == promql.AggModifierType.Without:
            return None if inner is None else inner - grouping
        return grouping

    def _call(self, node: promql.Call) -> Labels | None:
        name = node.func.name
        if node.func.return_type == promql.ValueType.Scalar:
            return None
        if name == "histogram_quantile":
            inner = self.labels(node.args[1])
            return None if inner is None else inner - {"le"}
        if name in ("absent", "absent_over_time"):
            selector = node.args[0]
            if isinstance(selector, promql.MatrixSelector):
                selector = selector.vector_selector
            return frozenset(
                m.name
                for m in selector.matchers.matchers
                if m.op == promql.MatchOp.Equal and m.name != "__name__"
            )
        if name == "vector":
            return frozenset()
        if name in ("label_replace", "label_join"):
            inner = self.labels(node.args[0])
            return None if inner is None else inner | {node.args[1].val}
        for arg in node.args:
            labels = self.labels(arg)
            if labels is not None:
                return labels
        return None

    def _binary(self, node: promql.BinaryExpr) -> Labels | None:
        lhs, rhs = self.labels(node.lhs), self.labels(node.rhs)
        if lhs is None or rhs is None:
            return rhs if lhs is None else lhs
        op = str(node.op)
        modifier = node.modifier
        if op in ("and", "unless"):
            return lhs
        if op == "or":
            return lhs | rhs
        if modifier is None:
            return lhs
        group = frozenset(modifier.group_labels or ())
        if modifier.card == promql.VectorMatchCardinality.ManyToOne:
            return lhs | group
        if modifier.card == promql.VectorMatchCardinality.OneToMany:
            return rhs | group
        if op in COMPARISONS and not modifier.return_bool:
            return lhs  # a filter: the left-hand series as they are
        matching = modifier.matching
        if matching is None:
            return lhs
        if matching.type == promql.LabelModifierType.Include:
            return frozenset(matching.labels)
        return lhs - set(matching.labels)


# --- the checks -----------------------------------------------------------------------------


def selectors(node: Any) -> list[promql.VectorSelector]:
    found: list[promql.VectorSelector] = []

    def visit(expr: Any) -> None:
        if isinstance(expr, promql.VectorSelector):
            found.append(expr)

    promql.walk(node, visit)
    return found


def clause(kind: str, labels: list[str]) -> str:
    return f"{kind} ({', '.join(labels)})"


def _side(scope: Scope, query: Query, node: Any, used: list[str], where: str) -> Iterator[Problem]:
    """A problem for each label in `used` that the series `node` returns do not carry."""
    labels = scope.labels(node)
    if labels is None:
        return
    metrics = ", ".join(sorted({selector_name(s) for s in selectors(node)})) or "the expression"
    for label in used:
        if label not in labels:
            yield Problem(
                query,
                metrics,
                f"has no label {label!r} (in `{where}`); it has {', '.join(sorted(labels))}",
            )


def problems(scope: Scope, query: Query) -> list[Problem]:
    try:
        root = promql.parse(query.expr)
    except ValueError as error:
        return [Problem(query, "the expression", f"does not parse: {error}")]
    found: list[Problem] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql.VectorSelector):
            name = selector_name(node)
            labels = scope.series(name)
            if labels is None:
                found.append(Problem(query, name, NOT_CATALOGUED))
                return
            for matcher in chain(node.matchers.matchers, *node.matchers.or_matchers):
                if matcher.name != "__name__" and matcher.name not in labels:
                    found.append(
                        Problem(
                            query,
                            name,
                            f"has no label {matcher.name!r} (in `{matcher}`); "
                            f"it has {', '.join(sorted(labels))}",
                        )
                    )
        elif isinstance(node, promql.AggregateExpr) and node.modifier is not None:
            kind = "without" if node.modifier.type == promql.AggModifierType.Without else "by"
            used = list(node.modifier.labels)
            found.extend(_side(scope, query, node.expr, used, clause(kind, used)))
        elif isinstance(node, promql.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None and matching.labels:
                include = matching.type == promql.LabelModifierType.Include
                used = list(matching.labels)
                where = clause("on" if include else "ignoring", used)
                for side in (node.lhs, node.rhs):
                    found.extend(_side(scope, query, side, used, where))
            group = list(node.modifier.group_labels or [])
            if group:
                left = node.modifier.card == promql.VectorMatchCardinality.ManyToOne
                one = node.rhs if left else node.lhs
                kind = "group_left" if left else "group_right"
                found.extend(_side(scope, query, one, group, clause(kind, group)))

    promql.walk(root, visit)
    return found


def text_problems(scope: Scope, query: Query, pattern: re.Pattern[str], what: str) -> list[Problem]:
    """A problem for each label the query's legend or alert text names but its result lacks."""
    labels = scope.labels(promql.parse(query.expr))
    if labels is None:
        return []
    return [
        Problem(query, "its result", f"has no label {label!r} (named in the {what})")
        for label in pattern.findall(query.text)
        if label not in labels
    ]


@pytest.fixture(scope="module")
def scope() -> Scope:
    scope = Scope()
    for name, expr in recording_rules():
        scope.record(name, expr)
    return scope


def assert_none(found: list[Problem]) -> None:
    if found:
        pytest.fail("\n".join(map(str, found)), pytrace=False)


def test_the_generated_files_are_there() -> None:
    assert RULE_FILES, "no alerts/*.rules.yaml"
    assert [p.stem for p in DASHBOARD_FILES] == sorted(
        ["cqrs-overview", "cqrs-replication", "cqrs-read-models", "cqrs-latency", "cqrs-exporter",
         "cqrs-slo"]
    )


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_metric_and_label_a_rule_uses_is_catalogued(scope: Scope, path: Path) -> None:
    queries = rule_queries(path)
    assert queries
    found = [problem for query in queries for problem in problems(scope, query)]
    assert_none(found)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_metric_and_label_a_dashboard_query_uses_is_catalogued(
    scope: Scope, path: Path
) -> None:
    queries = dashboard_queries(path)
    assert queries
    found = [problem for query in queries for problem in problems(scope, query)]
    assert_none(found)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_dashboard_variable_reads_a_catalogued_label(path: Path) -> None:
    found = []
    for query, metric, label in dashboard_variables(path):
        labels = catalogued_labels(metric)
        if labels is None:
            found.append(Problem(query, metric, NOT_CATALOGUED))
        elif label not in labels:
            found.append(Problem(query, metric, f"has no label {label!r}"))
    assert_none(found)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_label_a_legend_names_is_in_its_query_result(scope: Scope, path: Path) -> None:
    found = [
        problem
        for query in dashboard_queries(path)
        for problem in text_problems(scope, query, TEMPLATE_LABEL, "legend")
    ]
    assert_none(found)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_label_an_alert_text_names_is_in_its_result(scope: Scope, path: Path) -> None:
    found = [
        problem
        for query in rule_queries(path)
        for problem in text_problems(scope, query, ANNOTATION_LABEL, "alert's text")
    ]
    assert_none(found)


def test_the_queries_an_alert_stands_on_use_catalogued_metrics(scope: Scope) -> None:
    found = [
        problem
        for rule in alert_rules(Settings())
        for expr in rule.inputs
        for problem in problems(
            scope, Query("exporter/generate/rules.py", f"inputs of {rule.name}", expr)
        )
    ]
    assert_none(found)


def test_the_check_finds_a_wrong_label_an_unknown_metric_and_an_unknown_legend(
    scope: Scope,
) -> None:
    """The checks above have teeth: each mistake is named with its metric and label."""
    wrong_label = Query("f", "w", 'max by (read_model) (cqrs_replication_lag_seconds{probe="x"})')
    assert [str(p) for p in problems(scope, wrong_label)] == [
        'f: w: `max by (read_model) (cqrs_replication_lag_seconds{probe="x"})`: '
        "cqrs_replication_lag_seconds has no label 'read_model' (in `by (read_model)`); it has "
        "instance, job, source_datacenter, target_datacenter",
        'f: w: `max by (read_model) (cqrs_replication_lag_seconds{probe="x"})`: '
        "cqrs_replication_lag_seconds has no label 'probe' (in `probe=\"x\"`); it has "
        "instance, job, source_datacenter, target_datacenter",
    ]
    unknown = Query("f", "w", "rate(cqrs_probe_runs[5m]) and on (job) up")
    assert [p.metric for p in problems(scope, unknown)] == ["cqrs_probe_runs"]
    joined = Query("f", "w", "cqrs_up and on (probe) cqrs_probe_success")
    assert [(p.metric, p.message.split(" (")[0]) for p in problems(scope, joined)] == [
        ("cqrs_up", "has no label 'probe'")
    ]
    legend = Query("f", "w", "sum by (probe) (rate(cqrs_probe_runs_total[5m]))", "{{instance}}")
    assert [p.message for p in text_problems(scope, legend, TEMPLATE_LABEL, "legend")] == [
        "has no label 'instance' (named in the legend)"
    ]
    bucket = Query("f", "w", "sum by (le) (rate(cqrs_event_loop_lag_seconds_count[5m]))")
    assert [p.metric for p in problems(scope, bucket)] == ["cqrs_event_loop_lag_seconds_count"]


def test_recorded_series_keep_the_labels_they_are_recorded_by(scope: Scope) -> None:
    slo = {name for name in scope.recorded if name.startswith("slo_component:")}
    assert {scope.recorded[name] for name in slo} == {frozenset({"slo", "component"})}
    assert {k: v for k, v in scope.recorded.items() if k not in slo} == {
        "cassandra_datacenter:cqrs_command_duration_seconds:p99_rate5m": {"cassandra_datacenter"},
        "cassandra_datacenter:cqrs_command_duration_seconds_count:increase5m": {
            "cassandra_datacenter"
        },
        "cassandra_datacenter_query:cqrs_query_duration_seconds:p99_rate5m": {
            "cassandra_datacenter",
            "query",
        },
        "cassandra_datacenter_query:cqrs_query_duration_seconds_count:increase5m": {
            "cassandra_datacenter",
            "query",
        },
        "read_model:cqrs_sync_checks:increase15m": {"read_model"},
        "read_model:cqrs_sync_failures:increase15m": {"read_model"},
        "read_model:cqrs_sync_failure_ratio:ratio15m": {"read_model"},
        "read_model:cqrs_sync_failure_ratio:wilson_lower15m": {"read_model"},
    }


def test_a_histogram_names_its_buckets_and_its_count_and_nothing_else_does() -> None:
    assert catalogue.COMMAND_DURATION.bucket == "cqrs_command_duration_seconds_bucket"
    assert catalogue.COMMAND_DURATION.count == "cqrs_command_duration_seconds_count"
    assert catalogued_labels(catalogue.EVENT_LOOP_LAG.bucket) == {"le", "job", "instance"}
    assert catalogued_labels(catalogue.EVENT_LOOP_LAG.count) == {"job", "instance"}
    for spec in (catalogue.UP, catalogue.PROBE_RUNS, catalogue.EXPORTER_BUILD):
        with pytest.raises(ValueError, match="has no _bucket samples"):
            _ = spec.bucket
    assert catalogued_labels(catalogue.EXPORTER_BUILD.total) == {
        "version",
        "python_version",
        "job",
        "instance",
    }


# --- the families and the generators go through the catalogue -------------------------------


def python_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (REPO / package).rglob("*.py"))


def test_every_family_is_built_from_the_catalogue() -> None:
    found = []
    for path in python_files("exporter", "probes"):
        if path == CATALOGUE_FILE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            if name.endswith("MetricFamily"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}(...)")
    if found:
        pytest.fail(
            "families built outside exporter/metric_catalogue.py (build them with SPEC.family):\n"
            + "\n".join(found),
            pytrace=False,
        )


def test_the_generators_type_no_metric_name() -> None:
    """Metric names come from the catalogue's specs, so a rename there reaches every query."""
    names = re.compile(r"\bcqrs_\w+")
    found = []
    for path in python_files("exporter/generate"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.extend(
                    f"{path.relative_to(REPO)}:{node.lineno}: {name}"
                    for name in names.findall(node.value)
                )
    if found:
        pytest.fail("metric names typed as literals:\n" + "\n".join(found), pytrace=False)
