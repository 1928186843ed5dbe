"""The monitoring schema's CQL: NetworkTopologyStrategy over every datacenter, fixed-row tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from exporter.config import parse_config
from exporter.schema import TABLES, keyspace_cql, schema_cql

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
    (table,) = [t for t in TABLES if t.name == "replication_sentinels"]
    assert "PRIMARY KEY ((writer_id, source_datacenter))" in table.columns
    columns = dict(re.findall(r"(\w+) (text|uuid|bigint|timestamp)", table.columns))
    assert columns == {
        "writer_id": "text",
        "source_datacenter": "text",
        "incarnation": "uuid",
        "sequence": "bigint",
        "written_at": "timestamp",
    }
    # No clustering columns and no collections: a row can only be overwritten, never grow.
    assert "list<" not in table.columns and "map<" not in table.columns


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
