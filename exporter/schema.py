"""The exporter's own keyspace: what it needs, creating it when asked, naming what is missing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from exporter.config import Config
from exporter.connection import CassandraConnection

log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The monitoring keyspace or one of its tables is missing and may not be created."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: str
    """The body of CREATE TABLE: columns and primary key."""


TABLES: tuple[Table, ...] = (
    # One row per writer and source datacenter, overwritten each round with every column set
    # (no nulls, no deletes, no TTL): no growing partitions, no tombstones. The incarnation
    # tells a restarted writer's sentinels from its previous life's; written_at is the
    # regional heartbeat.
    Table(
        "replication_sentinels",
        "writer_id text, source_datacenter text, incarnation uuid, sequence bigint, "
        "written_at timestamp, PRIMARY KEY ((writer_id, source_datacenter))",
    ),
    # A fixed ring of rows per writer, overwritten by the command latency probe.
    Table(
        "command_probe",
        "writer_id text, slot int, sequence bigint, payload text, PRIMARY KEY ((writer_id, slot))",
    ),
)


def keyspace_cql(config: Config) -> str:
    replication = config.monitoring.replication_for(config.datacenters.all)
    options = ", ".join(f"'{dc}': {rf}" for dc, rf in replication.items())
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {config.monitoring.keyspace} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', {options}}}"
    )


def table_cql(config: Config, table: Table) -> str:
    return f"CREATE TABLE IF NOT EXISTS {config.monitoring.keyspace}.{table.name} ({table.columns})"


def schema_cql(config: Config) -> list[str]:
    """Every statement that creates the monitoring schema, for docs and `create_schema`."""
    return [keyspace_cql(config), *(table_cql(config, t) for t in TABLES)]


async def missing_schema(config: Config, connection: CassandraConnection) -> list[str]:
    """What of the monitoring schema does not exist, as `keyspace` or `keyspace.table`."""
    keyspace = config.monitoring.keyspace
    dc = config.datacenters.local_datacenter
    rows = await connection.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s",
        (keyspace,),
        datacenter=dc,
    )
    if not rows:
        return [keyspace]
    rows = await connection.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        (keyspace,),
        datacenter=dc,
    )
    present = {row.table_name for row in rows}
    return [f"{keyspace}.{t.name}" for t in TABLES if t.name not in present]


async def ensure_schema(config: Config, connection: CassandraConnection) -> None:
    """Create the schema when `create_schema` is set; else check it, naming what is missing."""
    missing = await missing_schema(config, connection)
    if not missing:
        return
    if not config.monitoring.create_schema:
        raise SchemaError(
            f"the monitoring schema is incomplete: missing {', '.join(missing)}. Create it with "
            f"the statements from `cqrs-exporter schema --config PATH`, or set "
            f"monitoring.create_schema: true"
        )
    dc = config.datacenters.write
    for statement in schema_cql(config):
        await connection.execute(statement, datacenter=dc, write=True, timeout=30.0)
    log.info("created the monitoring schema in keyspace %s", config.monitoring.keyspace)
