"""The monitoring schema on the real testbed: created when asked, otherwise named when missing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.config import parse_config
from exporter.connection import CassandraConnection
from exporter.schema import ensure_schema, keyspace_cql, missing_schema, schema_cql
from tests.support import poll_until, serve_until_exit

pytestmark = pytest.mark.cluster


def fresh_keyspace() -> str:
    return f"r3_schema_{uuid.uuid4().hex[:10]}"


async def run_statements(config: dict[str, Any], statements: list[str]) -> None:
    """Apply schema statements in the write datacenter, as an operator would."""
    connection = CassandraConnection(parse_config(config))
    await connection.connect()
    try:
        for statement in statements:

            async def applied(statement: str = statement) -> bool:
                try:  # a node just back from a fault test may still be settling
                    await connection.execute(
                        statement, datacenter="us-east", write=True, timeout=30
                    )
                except Exception:
                    return False
                return True

            await poll_until(applied, timeout=90, interval=1.0, message=statement)
    finally:
        await connection.close()


def test_serve_without_the_keyspace_names_it_and_exits_2(
    make_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    keyspace = fresh_keyspace()
    config = make_config({"monitoring": {"keyspace": keyspace, "create_schema": False}})
    result = serve_until_exit(config, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"the monitoring schema is incomplete: missing {keyspace}. Create it with the statements "
        "from `cqrs-exporter schema --config PATH`, or set monitoring.create_schema: true"
    ) in result.stderr


def test_serve_with_the_keyspace_but_no_tables_names_each_missing_table(
    make_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    keyspace = fresh_keyspace()
    config = make_config({"monitoring": {"keyspace": keyspace, "create_schema": False}})

    asyncio.run(run_statements(config, [keyspace_cql(parse_config(config))]))
    result = serve_until_exit(config, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    missing_line = next(line for line in result.stderr.splitlines() if "missing" in line)
    assert f"{keyspace}.replication_sentinels" in missing_line
    assert f"missing {keyspace}," not in missing_line  # the keyspace itself exists


async def test_create_schema_makes_an_nts_keyspace_over_every_datacenter(
    make_config: Callable[..., dict[str, Any]],
) -> None:
    keyspace = fresh_keyspace()
    config = parse_config(make_config({"monitoring": {"keyspace": keyspace}}))
    assert config.monitoring.create_schema
    connection = CassandraConnection(config)
    await connection.connect()
    try:

        async def created() -> bool:
            try:
                await ensure_schema(config, connection)
            except Exception:  # a node just back from a fault test may still be settling
                return False
            return True

        await poll_until(created, timeout=90, interval=1.0, message="schema created")
        (row,) = await connection.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (keyspace,),
            datacenter="us-east",
        )
        replication = dict(row.replication)
        assert replication.pop("class") == "org.apache.cassandra.locator.NetworkTopologyStrategy"
        assert replication == {"us-east": "1", "ca-central": "1", "eu-west": "1"}
        rows = await connection.execute(
            "SELECT column_name, type, kind FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = 'replication_sentinels'",
            (keyspace,),
            datacenter="us-east",
        )
        columns = {r.column_name: (r.type, r.kind) for r in rows}
        assert columns == {
            "writer_id": ("text", "partition_key"),
            "source_datacenter": ("text", "partition_key"),
            "incarnation": ("uuid", "regular"),
            "sequence": ("bigint", "regular"),
            "written_at": ("timestamp", "regular"),
        }
        await ensure_schema(config, connection)  # a second time finds everything in place
    finally:
        await connection.close()


def test_a_table_from_an_older_release_is_named_by_column_then_completed_when_allowed(
    make_config: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    keyspace = fresh_keyspace()
    config = make_config({"monitoring": {"keyspace": keyspace, "create_schema": False}})
    parsed = parse_config(config)
    older_sentinels = (
        f"CREATE TABLE {keyspace}.replication_sentinels (writer_id text, source_datacenter "
        "text, sequence bigint, written_at timestamp, PRIMARY KEY ((writer_id, "
        "source_datacenter)))"
    )
    command_probe = next(s for s in schema_cql(parsed) if ".command_probe " in s)
    asyncio.run(run_statements(config, [keyspace_cql(parsed), older_sentinels, command_probe]))

    result = serve_until_exit(config, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    missing_line = next(line for line in result.stderr.splitlines() if "missing" in line)
    assert f"missing {keyspace}.replication_sentinels.incarnation (uuid)." in missing_line

    allowed = parse_config(make_config({"monitoring": {"keyspace": keyspace}}))

    async def complete_it() -> dict[str, str]:
        connection = CassandraConnection(allowed)
        await connection.connect()
        try:
            await ensure_schema(allowed, connection)
            assert not await missing_schema(allowed, connection)
            rows = await connection.execute(
                "SELECT column_name, type FROM system_schema.columns "
                "WHERE keyspace_name = %s AND table_name = 'replication_sentinels'",
                (keyspace,),
                datacenter="us-east",
            )
            return {r.column_name: r.type for r in rows}
        finally:
            await connection.close()

    columns = asyncio.run(complete_it())
    assert columns["incarnation"] == "uuid" and columns["sequence"] == "bigint"
