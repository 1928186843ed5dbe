"""Read models in the config: one section per method, CQL checked for its binds, clear errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import ConfigError, SyncMethod, parse_config
from exporter.config.read_models import bind_names
from tests.support import merge

BASE: dict[str, Any] = {
    "cluster": {"contact_points": ["127.0.0.1"]},
    "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
}

CHECKPOINT = {
    "name": "orders_projection",
    "method": "checkpoint",
    "checkpoint": {
        "head_query": "SELECT event_id FROM shop.event_feed WHERE day = currentDate() "
        "ORDER BY event_id DESC LIMIT 1",
        "checkpoint_query": "SELECT position FROM shop.projection_checkpoints "
        "WHERE projector = 'orders'",
    },
}

AUDIT = {
    "name": "orders_by_customer",
    "method": "audit",
    "datacenter": "ca-central",
    "audit": {
        "recent_query": "SELECT order_id, customer_id, created_at, total, status, "
        "WRITETIME(status) AS written_at FROM shop.orders_by_id WHERE created_at > :since "
        "LIMIT :max_rows",
        "lookup_query": "SELECT total, status, WRITETIME(status) AS written_at FROM "
        "shop.orders_by_customer WHERE customer_id = :customer_id AND created_at = :created_at "
        "AND order_id = :order_id",
        "compare": ["total", "status"],
    },
}

SENTINEL = {
    "name": "orders_e2e",
    "method": "sentinel",
    "sentinel": {
        "write": "INSERT INTO shop.events (aggregate_id, event_id, event_type, event_data) "
        "VALUES (00000000-0000-0000-0000-000000000000, :sentinel_id, 'OrderCreated', "
        "textAsBlob(:payload))",
        "read": "SELECT status FROM shop.orders_by_customer WHERE "
        "customer_id = 00000000-0000-0000-0000-000000000000",
        "match": {"status": "sentinel_tag"},
        "params": {"payload": '{"status": "$sentinel_tag"}'},
    },
}


def config_with(*models: dict[str, Any]) -> Any:
    return parse_config(merge(BASE, {"read_models": list(models)}))


def errors_for(*models: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_with(*models)
    return caught.value.errors


def test_one_read_model_per_method_parses_with_per_method_schedules() -> None:
    config = config_with(CHECKPOINT, AUDIT, SENTINEL)
    checkpoint, audit, sentinel = config.read_models
    assert checkpoint.method is SyncMethod.CHECKPOINT
    assert (checkpoint.interval, checkpoint.timeout) == (1.0, 0.9)
    assert (audit.interval, audit.timeout) == (10.0, 8.0)
    assert (sentinel.interval, sentinel.timeout) == (5.0, 2.0)
    assert audit.audit is not None and audit.audit.fields == {"total": "total", "status": "status"}
    assert audit.audit.budget == 10.0 and audit.audit.grace == 30.0
    assert sentinel.sentinel is not None and sentinel.sentinel.statements[0].startswith("INSERT")
    assert not checkpoint.checks_sync and audit.checks_sync and sentinel.checks_sync
    # Multi-line YAML CQL is folded onto one line.
    assert "\n" not in audit.audit.lookup_query


def test_an_interval_alone_gets_a_timeout_that_fits_it() -> None:
    model = config_with({**CHECKPOINT, "interval": "500ms"}).read_models[0]
    assert model.timeout == pytest.approx(0.4)


def test_compare_may_map_read_model_columns_to_source_columns() -> None:
    model = merge(AUDIT, {"audit": {"compare": {"amount": "total"}}})
    audit = config_with(model).read_models[0].audit
    assert audit is not None and audit.fields == {"amount": "total"}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            {"name": "x", "method": "audit"},
            "read_models[0]: method 'audit' needs its `audit:` section",
        ),
        (
            {**CHECKPOINT, "audit": AUDIT["audit"]},
            "read_models[0]: `audit:` given but method is 'checkpoint'",
        ),
        (
            {**CHECKPOINT, "method": "guess"},
            "read_models[0].method: input should be 'checkpoint', 'audit' or 'sentinel'",
        ),
        (
            merge(CHECKPOINT, {"checkpoint": {"head_query": "DELETE FROM shop.events"}}),
            "read_models[0].checkpoint.head_query: must be a SELECT statement, got 'DELETE'",
        ),
        (
            merge(AUDIT, {"audit": {"recent_query": None}}),
            "read_models[0].audit: give recent_query, sample_query or both",
        ),
        (
            merge(AUDIT, {"audit": {"recent_query": "SELECT a FROM t WHERE b > :after"}}),
            "read_models[0].audit: unknown bind marker :after in recent_query "
            "(available: :max_rows, :since, :start_token)",
        ),
        (
            merge(AUDIT, {"audit": {"sample_query": "SELECT a FROM t LIMIT :max_rows"}}),
            "read_models[0].audit: sample_query must bind :start_token, e.g. WHERE "
            "token(id) >= :start_token",
        ),
        (
            merge(AUDIT, {"audit": {"lookup_query": "SELECT a FROM t WHERE k = ?"}}),
            "read_models[0].audit.lookup_query: use named bind markers such as :name, not '?'",
        ),
        (
            merge(AUDIT, {"audit": {"budget": 0}}),
            "read_models[0].audit.budget: input should be greater than 0",
        ),
        (
            merge(AUDIT, {"audit": {"grace": "10m"}}),
            "read_models[0].audit: grace (10m) must be shorter than lag_window (5m)",
        ),
        (
            merge(AUDIT, {"audit": {"compare": []}}),
            "read_models[0].audit.compare: name at least one field to compare",
        ),
        (
            merge(SENTINEL, {"sentinel": {"params": {"payload": "$nonsense"}}}),
            "read_models[0].sentinel.params: payload: unknown template field $nonsense "
            "(available: $sentinel_date, $sentinel_id, $sentinel_seq, $sentinel_tag, "
            "$sentinel_time_ms, $writer_id)",
        ),
        (
            merge(SENTINEL, {"sentinel": {"match": {"status": "nothing"}}}),
            "read_models[0].sentinel: match.status: 'nothing' is neither a built-in bind nor "
            "a param",
        ),
        (
            merge(SENTINEL, {"sentinel": {"write": "SELECT * FROM shop.events"}}),
            "read_models[0].sentinel.write: must write (INSERT, UPDATE or BATCH), got a SELECT",
        ),
        (
            {**CHECKPOINT, "interval": "1s", "timeout": "2s"},
            "read_models[0]: timeout (2s) must be shorter than interval (1s)",
        ),
        (
            {**AUDIT, "datacenter": "mars"},
            "(top level): read_models[0] (orders_by_customer): unknown datacenter 'mars' "
            "(declared: us-east, ca-central, eu-west)",
        ),
    ],
)
def test_bad_read_model_names_the_key_and_the_cause(model: dict[str, Any], expected: str) -> None:
    assert errors_for(model) == [expected]


def test_duplicate_names_are_refused() -> None:
    assert errors_for(CHECKPOINT, CHECKPOINT) == [
        "(top level): read model names must be unique: orders_projection"
    ]


def test_bind_names_ignore_string_literals_and_casts() -> None:
    cql = "SELECT a FROM t WHERE k = :key AND c = '12:30' AND d = :day"
    assert bind_names(cql) == {"key", "day"}
    assert bind_names("SELECT a::text FROM t") == set()


def test_the_examples_in_the_documentation_are_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "read-models.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)
              if b.startswith("  - name:")]
    assert len(blocks) == 3
    models = [yaml.safe_load(block)[0] for block in blocks]
    config = config_with(*models)
    assert [m.method.value for m in config.read_models] == ["checkpoint", "audit", "sentinel"]
