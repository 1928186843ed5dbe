"""The schema statements quote what they interpolate, even a name the config would refuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exporter.config import Config, parse_config
from exporter.schema import keyspace_cql, schema_cql

INJECTED = "eu', 'x': 1}; DROP KEYSPACE shop; --"


def config_with_datacenter(name: str) -> Config:
    valid = parse_config(
        {"cluster": {"contact_points": ["127.0.0.1"]},
         "datacenters": {"write": "us-east", "read": ["eu-west"]},
         "monitoring": {"keyspace": "Cqrs_Monitoring", "replication_factor": {"eu-west": 2}}},
        resolve_secrets=False,
    )
    datacenters = valid.datacenters.model_copy(update={"read": [name]})
    return valid.model_copy(update={"datacenters": datacenters})


def test_a_datacenter_is_a_string_literal_in_the_replication_map() -> None:
    cql = keyspace_cql(config_with_datacenter(INJECTED))
    assert cql == (
        "CREATE KEYSPACE IF NOT EXISTS cqrs_monitoring WITH replication = {'class': "
        "'NetworkTopologyStrategy', 'us-east': 3, 'eu'', ''x'': 1}; DROP KEYSPACE shop; --': 3}"
    )


def test_the_keyspace_is_named_as_cassandra_stores_it() -> None:
    statements = schema_cql(config_with_datacenter("eu-west"))
    assert "'eu-west': 2" in statements[0]
    assert all("cqrs_monitoring." in s for s in statements[1:])


def test_schema_refuses_an_injected_datacenter(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "cluster: {contact_points: [127.0.0.1]}\n"
        f"datacenters: {{write: us-east, read: [\"{INJECTED}\"]}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "schema", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "datacenters.read[0]:" in result.stderr and "Traceback" not in result.stderr
