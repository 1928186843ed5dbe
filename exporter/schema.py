"""The exporter's own keyspace: what it needs, creating it when asked, naming what is missing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from exporter.config import Config
from exporter.config.cql import quote_name, quote_string
from exporter.connection import CassandraConnection
from exporter.tables import Table
from probes import registry

log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The monitoring keyspace or one of its tables is missing and may not be created."""


@dataclass(frozen=True)
class SchemaGaps:
    """How the monitoring schema in the cluster differs from what the exporter needs."""

    keyspace: str | None = None
    """The keyspace itself, when it does not exist."""
    tables: tuple[Table, ...] = ()
    columns: tuple[tuple[Table, str, str], ...] = ()
    """Regular columns missing from existing tables: (table, column, CQL type)."""
    conflicts: tuple[str, ...] = ()
    """What cannot be repaired in place: a key column missing, or a column of another type."""

    def __bool__(self) -> bool:
        return bool(self.keyspace or self.tables or self.columns or self.conflicts)

    def names(self, keyspace: str) -> list[str]:
        """What is missing, as `keyspace`, `keyspace.table` or `keyspace.table.column`."""
        if self.keyspace:
            return [self.keyspace]
        return [
            *(f"{keyspace}.{t.name}" for t in self.tables),
            *(f"{keyspace}.{t.name}.{column} ({cql_type})" for t, column, cql_type in self.columns),
        ]


def keyspace_cql(config: Config) -> str:
    """CREATE KEYSPACE, each datacenter a quoted string literal (names are checked at load
    too, but a replication map is no place to trust them)."""
    replication = config.monitoring.replication_for(config.datacenters.all)
    options = ", ".join(f"{quote_string(dc)}: {int(rf)}" for dc, rf in replication.items())
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {_keyspace(config)} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', {options}}}"
    )


def _keyspace(config: Config) -> str:
    # An unquoted name in CQL is case-insensitive: quote the name Cassandra stores.
    return quote_name(config.monitoring.keyspace.lower())


def table_cql(config: Config, table: Table) -> str:
    return f"CREATE TABLE IF NOT EXISTS {_keyspace(config)}.{quote_name(table.name)} ({table.body})"


def schema_cql(config: Config) -> list[str]:
    """Every statement that creates the monitoring schema, for docs and `create_schema`."""
    return [keyspace_cql(config), *(table_cql(config, t) for t in registry.tables())]


async def missing_schema(config: Config, connection: CassandraConnection) -> SchemaGaps:
    """Compare the monitoring keyspace's tables and columns with what the probes write."""
    keyspace = config.monitoring.keyspace.lower()  # as Cassandra stores an unquoted name
    dc = config.datacenters.local_datacenter
    rows = await connection.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s",
        (keyspace,),
        datacenter=dc,
    )
    if not rows:
        return SchemaGaps(keyspace=keyspace)
    rows = await connection.execute(
        "SELECT table_name, column_name, type FROM system_schema.columns WHERE keyspace_name = %s",
        (keyspace,),
        datacenter=dc,
    )
    present: dict[str, dict[str, str]] = {}
    for row in rows:
        present.setdefault(row.table_name, {})[row.column_name] = row.type
    tables: list[Table] = []
    columns: list[tuple[Table, str, str]] = []
    conflicts: list[str] = []
    for table in registry.tables():
        found = present.get(table.name)
        if found is None:
            tables.append(table)
            continue
        for column, cql_type in (*table.key, *table.columns):
            actual = found.get(column)
            where = f"{keyspace}.{table.name}.{column}"
            if actual is None and (column, cql_type) in table.columns:
                columns.append((table, column, cql_type))
            elif actual is None:
                conflicts.append(f"{where} is missing from the primary key")
            elif actual != cql_type:
                conflicts.append(f"{where} is {actual}, not {cql_type}")
    return SchemaGaps(tables=tuple(tables), columns=tuple(columns), conflicts=tuple(conflicts))


async def ensure_schema(config: Config, connection: CassandraConnection) -> None:
    """Create the schema when `create_schema` is set; else check it, naming what is missing.

    With `create_schema`, missing tables are created and missing regular columns added (a
    table from an older release); a key column or a type that differs is never changed in
    place, since that would need the table dropped.
    """
    keyspace = config.monitoring.keyspace
    gaps = await missing_schema(config, connection)
    if not gaps:
        return
    if gaps.conflicts:
        raise SchemaError(
            f"the monitoring schema cannot be used: {'; '.join(gaps.conflicts)}. Drop the "
            f"table (it holds only probe rows) and let the exporter create it, or create it "
            f"with the statements from `cqrs-exporter schema --config PATH`"
        )
    if not config.monitoring.create_schema:
        raise SchemaError(
            f"the monitoring schema is incomplete: missing {', '.join(gaps.names(keyspace))}. "
            f"Create it with the statements from `cqrs-exporter schema --config PATH`, or set "
            f"monitoring.create_schema: true"
        )
    dc = config.datacenters.write
    # CREATE KEYSPACE takes CREATE on ALL KEYSPACES even when the keyspace exists: a role
    # granted CREATE on the monitoring keyspace alone only creates its tables.
    statements = [
        *([keyspace_cql(config)] if gaps.keyspace else []),
        *(table_cql(config, t) for t in registry.tables()),
        *(
            f"ALTER TABLE {_keyspace(config)}.{quote_name(table.name)} ADD {quote_name(column)} "
            f"{cql_type}"
            for table, column, cql_type in gaps.columns
        ),
    ]
    for statement in statements:
        await connection.execute(statement, datacenter=dc, write=True, timeout=30.0)
    log.info("created the monitoring schema in keyspace %s", keyspace)
