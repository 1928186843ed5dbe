"""The latency section of the config: defaults, declared queries, one clear error per mistake."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config import ConfigError, parse_config
from exporter.config.latency import bind_markers, queried_table

QUERY = {
    "name": "orders_by_customer",
    "cql": "SELECT order_id, total FROM shop.orders_by_customer WHERE customer_id = ? LIMIT 20",
    "key_query": "SELECT DISTINCT customer_id FROM shop.orders_by_customer LIMIT 1000",
}


def config(latency: dict[str, Any]) -> dict[str, Any]:
    return {
        "cluster": {"contact_points": ["127.0.0.1"]},
        "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
        "probes": {"latency": latency},
    }


def test_defaults_follow_the_issue() -> None:
    latency = parse_config(config({})).probes.latency
    assert latency.rate == 10.0
    assert latency.window == 300.0 and latency.window_slices == 5
    assert latency.timeout < latency.interval
    assert latency.command_consistency is None and latency.query_consistency is None
    assert latency.loop_lag_flag == pytest.approx(0.010)
    assert latency.queries == []
    assert latency.server.enabled and latency.server.timeout < latency.server.interval


def test_a_declared_query_takes_its_keys_from_the_key_query() -> None:
    latency = parse_config(
        config({"queries": [{**QUERY, "datacenters": ["eu-west"], "consistency": "LOCAL_QUORUM"}]})
    ).probes.latency
    (query,) = latency.queries
    assert query.markers == 1
    assert query.datacenters == ["eu-west"]
    assert query.consistency is not None and query.consistency.value == "LOCAL_QUORUM"
    assert query.key_refresh == 300.0


@pytest.mark.parametrize(
    ("latency", "error"),
    [
        (
            {"timeout": "10s"},
            "probes.latency: timeout (10s) must be shorter than interval (10s)",
        ),
        ({"rate": 0}, "probes.latency.rate: input should be greater than 0"),
        (
            {"window": "3s", "window_slices": 5},
            "probes.latency: window (3s) split into 5 slices gives slices shorter than 1s",
        ),
        (
            {"queries": [{**QUERY, "datacenters": ["ap-south"]}]},
            "probes: latency.queries[0].datacenters: unknown datacenter 'ap-south' "
            "(known: us-east, ca-central, eu-west)",
        ),
        (
            {"queries": [{**QUERY, "cql": "DELETE FROM shop.t WHERE k = ?"}]},
            "probes.latency.queries[0].cql: must be a SELECT statement, got 'DELETE'",
        ),
        (
            {"queries": [{**QUERY, "cql": "SELECT * FROM orders WHERE k = ?"}]},
            "probes.latency.queries[0].cql: name the table with its keyspace, as in "
            "FROM keyspace.table",
        ),
        (
            {"queries": [{"name": "q", "cql": "SELECT * FROM shop.t WHERE k = ?"}]},
            "probes.latency.queries[0]: cql has 1 bind marker(s) (?), so key_query must say "
            "where their values come from",
        ),
        (
            {"queries": [{**QUERY, "cql": "SELECT * FROM shop.t"}]},
            "probes.latency.queries[0]: key_query is given but cql has no bind markers (?) "
            "to take keys",
        ),
        (
            {"queries": [QUERY, QUERY]},
            "probes.latency: query names must be unique: orders_by_customer",
        ),
        (
            {"queries": [{**QUERY, "name": "has space"}]},
            "probes.latency.queries[0].name: string should match pattern "
            "'^[A-Za-z][A-Za-z0-9_.-]{0,63}$'",
        ),
        (
            {"queries": [{**QUERY, "colour": "blue"}]},
            "probes.latency.queries[0].colour: unknown key",
        ),
        (
            {"command_consistency": "SOMETIMES"},
            "probes.latency.command_consistency: input should be 'ONE', 'LOCAL_ONE', 'QUORUM', "
            "'LOCAL_QUORUM', 'EACH_QUORUM' or 'ALL'",
        ),
    ],
)
def test_a_bad_latency_section_names_the_key(latency: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(latency))
    assert caught.value.errors == [error]


@pytest.mark.parametrize(
    ("cql", "markers"),
    [
        ("SELECT * FROM ks.t WHERE a = ? AND b = ?", 2),
        ("SELECT * FROM ks.t WHERE a = '?' AND b = ?", 1),
        ('SELECT "odd?" FROM ks.t WHERE a = ?', 1),
        ("SELECT * FROM ks.t", 0),
    ],
)
def test_bind_markers_are_counted_outside_literals(cql: str, markers: int) -> None:
    assert bind_markers(cql) == markers


def test_the_queried_table_is_found_as_cassandra_names_it() -> None:
    assert queried_table("select x from Shop.Orders where k = ?") == ("shop", "orders")
    assert queried_table('SELECT x FROM "Shop"."Orders"') == ("Shop", "Orders")
    assert queried_table("SELECT x FROM orders") is None
