"""values.schema.json, as helm applies it: mistyped and unknown values are refused, with a
message that names the value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.config import Config
from tests.chart.test_helm import CHART, Chart, ci

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Chart:
    return Chart(tmp_path_factory.mktemp("helm-home-schema"))


def refused(chart: Chart, overrides: dict[str, Any]) -> str:
    error = chart.error(ci("writer"), overrides=overrides)
    assert "values don't meet the specifications of the schema" in error
    return error


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cassandra": {"port": "9042"}}, "at '/cassandra/port': got string, want integer"),
        (
            {"serviceMonitor": {"enabled": "yes"}},
            "at '/serviceMonitor/enabled': got string, want boolean",
        ),
        ({"datacenters": {"read": "ca-central"}}, "at '/datacenters/read': got string, want array"),
        ({"resources": []}, "at '/resources': got array, want object"),
        ({"livenessProbe": {"periodSeconds": 0}}, "at '/livenessProbe/periodSeconds'"),
        ({"role": "reader"}, "at '/role': value must be one of 'writer', 'regional'"),
        ({"logFormat": "yaml"}, "at '/logFormat': value must be one of 'json', 'text'"),
        ({"serviceMonitor": {"interval": "15 seconds"}}, "at '/serviceMonitor/interval'"),
        ({"region": "us east"}, "at '/region'"),
        ({"config": {"thresholds": "1s"}}, "at '/config/thresholds': got string, want object"),
        (
            {"cassandra": {"auth": {"passwordFrom": "volume"}}},
            "at '/cassandra/auth/passwordFrom': value must be one of 'env', 'file'",
        ),
        ({"sharding": {"shards": 0}}, "at '/sharding/shards'"),
        ({"web": {"healthPort": 70000}}, "at '/web/healthPort'"),
        ({"serviceMonitor": {"scheme": "ftp"}}, "at '/serviceMonitor/scheme'"),
        (
            {"serviceMonitor": {"basicAuth": {"username": {"name": "s"}}}},
            "at '/serviceMonitor/basicAuth/username': missing property 'key'",
        ),
        ({"networkPolicy": {"metricsFrom": {}}}, "at '/networkPolicy/metricsFrom'"),
    ],
)
def test_a_wrong_value_type_is_refused_naming_the_value(
    chart: Chart, overrides: dict[str, Any], message: str
) -> None:
    assert message in refused(chart, overrides)


@pytest.mark.parametrize(
    ("overrides", "where", "key"),
    [
        ({"replicaCount": 2}, "at ''", "replicaCount"),
        ({"serviceMonitor": {"enable": True}}, "at '/serviceMonitor'", "enable"),
        (
            {"cassandra": {"auth": {"passwordSecret": "x"}}},
            "at '/cassandra/auth'",
            "passwordSecret",
        ),
        ({"config": {"thresholds": {}, "threshold": {}}}, "at '/config'", "threshold"),
        ({"web": {"config": {"tls_config": {}}}}, "at '/web/config'", "tls_config"),
        (
            {"serviceMonitor": {"tlsConfig": {"ca_file": "/ca.crt"}}},
            "at '/serviceMonitor/tlsConfig'",
            "ca_file",
        ),
        ({"sharding": {"count": 2}}, "at '/sharding'", "count"),
        (
            {"networkPolicy": {"metricsFrom": [{"namespaceSelectors": {}}]}},
            "at '/networkPolicy/metricsFrom/0'",
            "namespaceSelectors",
        ),
    ],
)
def test_an_unknown_value_is_refused_naming_the_key(
    chart: Chart, overrides: dict[str, Any], where: str, key: str
) -> None:
    error = refused(chart, overrides)
    assert f"{where}: additional properties '{key}' not allowed" in error


def test_every_section_of_the_exporter_config_may_be_given_under_config() -> None:
    """The schema's `config` keys are the exporter's own top-level sections, no more, no less;
    `sharding` is among them so that the templates can say to use the chart's own value."""
    sections = set(Config.model_fields) | {"sharding"}
    assert set(SCHEMA["properties"]["config"]["properties"]) == sections
    assert SCHEMA["properties"]["config"]["additionalProperties"] is False


def test_the_schema_refuses_unknown_keys_at_every_level_it_describes() -> None:
    def open_objects(node: dict[str, Any], path: str) -> list[str]:
        found = []
        if "properties" in node and node.get("additionalProperties") is not False:
            found.append(path or "(top level)")
        for key, child in node.get("properties", {}).items():
            found += open_objects(child, f"{path}.{key}")
        return found

    assert open_objects(SCHEMA, "") == []
