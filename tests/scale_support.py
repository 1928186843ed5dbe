"""Many read models and declared queries on tables of their own: for the scale bench, the
sharding tests and the budget tests.

Every read model reads the `scale` keyspace: checkpoints compare two position rows, audits
sample `scale.source` and look rows up in `scale.target`, sentinels write `scale.sentinels`
in the write datacenter and read it back where the read model is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from exporter.config import parse_config
from exporter.connection import CassandraConnection

KEYSPACE = "scale"
ROWS = 200
"""Rows in scale.source and scale.target (the same ids and values: in sync)."""
METHODS = ("checkpoint", "audit", "sentinel")


def schema_cql(datacenters: Sequence[str], replication_factor: int = 1) -> list[str]:
    """The keyspace and tables, with a replica of each row in every datacenter."""
    replicas = ", ".join(f"'{dc}': {replication_factor}" for dc in datacenters)
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', {replicas}}}",
        f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.positions (name text PRIMARY KEY, position "
        "timestamp)",
        f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.source (id int PRIMARY KEY, v int)",
        f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.target (id int PRIMARY KEY, v int)",
        f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.sentinels (name text PRIMARY KEY, tag text)",
    ]


def data_cql() -> list[str]:
    """The rows the audits and the declared queries read."""
    return [
        f"INSERT INTO {KEYSPACE}.{table} (id, v) VALUES ({i}, {i})"
        for table in ("source", "target")
        for i in range(ROWS)
    ] + [
        f"INSERT INTO {KEYSPACE}.positions (name, position) VALUES ('{side}', toTimestamp(now()))"
        for side in ("head", "checkpoint")
    ]


def read_model(index: int, datacenters: Sequence[str]) -> dict[str, Any]:
    """Read model number `index`: its method in turn, its datacenter in turn."""
    method = METHODS[index % len(METHODS)]
    name = f"rm_{index:03d}_{method}"
    dc = datacenters[(index // len(METHODS)) % len(datacenters)]
    entry: dict[str, Any] = {"name": name, "method": method, "datacenter": dc}
    if method == "checkpoint":
        entry["checkpoint"] = {
            "head_query": f"SELECT position FROM {KEYSPACE}.positions WHERE name = 'head'",
            "checkpoint_query": (
                f"SELECT position FROM {KEYSPACE}.positions WHERE name = 'checkpoint'"
            ),
        }
    elif method == "audit":
        entry["audit"] = {
            "sample_query": (
                f"SELECT id, v, WRITETIME(v) AS written_at FROM {KEYSPACE}.source "
                "WHERE token(id) >= :start_token LIMIT :max_rows"
            ),
            "lookup_query": (
                f"SELECT v, WRITETIME(v) AS written_at FROM {KEYSPACE}.target WHERE id = :id"
            ),
            "compare": ["v"],
            "samples_per_run": 10,
        }
    else:
        entry["sentinel"] = {
            "write": (
                f"INSERT INTO {KEYSPACE}.sentinels (name, tag) VALUES ('{name}', :sentinel_tag)"
            ),
            "read": f"SELECT tag FROM {KEYSPACE}.sentinels WHERE name = '{name}'",
            "match": {"tag": "sentinel_tag"},
        }
    return entry


def read_models(count: int, datacenters: Sequence[str]) -> list[dict[str, Any]]:
    return [read_model(i, datacenters) for i in range(count)]


def queries(count: int, rate: float) -> list[dict[str, Any]]:
    """`count` declared queries on scale.target, each at `rate` per datacenter."""
    return [
        {
            "name": f"q_{i:02d}",
            "cql": f"SELECT v FROM {KEYSPACE}.target WHERE id = ?",
            "key_query": f"SELECT id FROM {KEYSPACE}.target LIMIT 100",
            "rate": rate,
        }
        for i in range(count)
    ]


def scale_config(
    base: dict[str, Any], datacenters: Sequence[str], models: int, query_count: int,
    query_rate: float = 0.5,
) -> dict[str, Any]:
    """`base` (an exporter config dict) with the read models and declared queries."""
    config = dict(base)
    config["read_models"] = read_models(models, datacenters)
    probes = dict(config.get("probes", {}))
    latency = dict(probes.get("latency", {}))
    latency["queries"] = queries(query_count, query_rate)
    probes["latency"] = latency
    config["probes"] = probes
    return config


async def create_tables(config: dict[str, Any], datacenters: Sequence[str]) -> None:
    """The scale tables and their rows, through the exporter's own connection."""
    parsed = parse_config(config)
    connection = CassandraConnection(parsed)
    await connection.connect()
    try:
        write = parsed.datacenters.write
        for statement in schema_cql(datacenters):
            await connection.execute(statement, datacenter=write, timeout=30)
        await asyncio.gather(
            *(connection.execute(s, datacenter=write, write=True) for s in data_cql())
        )
    finally:
        await connection.close()
