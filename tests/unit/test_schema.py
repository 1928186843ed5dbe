"""The monitoring schema's CQL: NetworkTopologyStrategy over every datacenter, fixed-row tables."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import yaml

from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.schema import SchemaGaps, keyspace_cql, missing_schema, schema_cql
from probes.registry import tables

CONFIG = {
    "cluster": {"contact_points": ["127.0.0.1"]},
    "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
}


def test_keyspace_replicates_to_every_configured_datacenter_with_nts() -> None:
    config = parse_config({**CONFIG, "monitoring": {"keyspace": "mon", "replication_factor": 3}})
    assert keyspace_cql(config) == (
        "CREATE KEYSPACE IF NOT EXISTS mon WITH replication = {'class': "
        "'NetworkTopologyStrategy', 'us-east': 3, 'ca-central': 3, 'eu-west': 3}"
    )


def test_per_datacenter_replication_factors_are_honoured() -> None:
    config = parse_config(
        {**CONFIG, "monitoring": {"replication_factor": {"us-east": 5, "eu-west": 2}}}
    )
    statement = keyspace_cql(config)
    assert "'us-east': 5" in statement and "'eu-west': 2" in statement
    assert "'ca-central': 3" in statement  # unnamed datacenters keep the default


def test_sentinel_table_has_one_partition_per_writer_and_source_datacenter() -> None:
    (table,) = [t for t in tables() if t.name == "replication_sentinels"]
    assert "PRIMARY KEY ((writer_id, source_datacenter))" in table.body
    columns = dict(re.findall(r"(\w+) (text|uuid|bigint|timestamp)", table.body))
    assert columns == {
        "writer_id": "text",
        "source_datacenter": "text",
        "incarnation": "uuid",
        "sequence": "bigint",
        "written_at": "timestamp",
    }
    # No clustering columns and no collections: a row can only be overwritten, never grow.
    assert "list<" not in table.body and "map<" not in table.body


class SchemaTables:
    """Answers the two system_schema queries of `missing_schema` from a fixed description."""

    def __init__(self, keyspace_exists: bool, columns: dict[str, dict[str, str]]) -> None:
        self.keyspace_exists = keyspace_exists
        self.columns = columns

    async def execute(self, query: str, params: Any = None, **_: Any) -> list[Any]:
        if "system_schema.keyspaces" in query:
            return [SimpleNamespace(keyspace_name=params[0])] if self.keyspace_exists else []
        return [
            SimpleNamespace(table_name=table, column_name=column, type=cql_type)
            for table, columns in self.columns.items()
            for column, cql_type in columns.items()
        ]


def complete_columns() -> dict[str, dict[str, str]]:
    return {t.name: dict((*t.key, *t.columns)) for t in tables()}


def gaps_of(keyspace_exists: bool, columns: dict[str, dict[str, str]]) -> SchemaGaps:
    config = parse_config({**CONFIG, "monitoring": {"keyspace": "mon"}})
    connection = cast(CassandraConnection, SchemaTables(keyspace_exists, columns))
    return asyncio.run(missing_schema(config, connection))


def test_a_complete_schema_has_no_gaps() -> None:
    assert not gaps_of(True, complete_columns())


def test_a_missing_keyspace_is_named_alone() -> None:
    gaps = gaps_of(False, {})
    assert gaps and gaps.names("mon") == ["mon"]


def test_missing_tables_and_regular_columns_are_named_with_their_types() -> None:
    columns = complete_columns()
    del columns["command_probe"]
    del columns["replication_sentinels"]["incarnation"]  # a table from an older release
    gaps = gaps_of(True, columns)
    assert gaps.names("mon") == [
        "mon.command_probe",
        "mon.replication_sentinels.incarnation (uuid)",
    ]
    assert not gaps.conflicts


def test_a_changed_type_or_missing_key_column_is_a_conflict_not_a_gap_to_fill() -> None:
    columns = complete_columns()
    columns["replication_sentinels"]["sequence"] = "int"
    del columns["command_probe"]["slot"]
    gaps = gaps_of(True, columns)
    assert gaps.conflicts == (
        "mon.replication_sentinels.sequence is int, not bigint",
        "mon.command_probe.slot is missing from the primary key",
    )
    assert not gaps.columns and not gaps.tables


def test_schema_command_prints_every_statement(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "monitoring": {"keyspace": "printed"}}))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "schema", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config = parse_config({**CONFIG, "monitoring": {"keyspace": "printed"}})
    assert result.stdout.splitlines() == [f"{s};" for s in schema_cql(config)]
