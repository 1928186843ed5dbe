"""The shape of a table a probe writes in the monitoring keyspace.

Each probe family declares its tables (`probes.registry` gathers them); `exporter.schema`
creates or checks them. Rows never grow: every table is keyed by its partition key alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[tuple[str, str], ...]
    """The partition-key columns and their CQL types (no clustering: rows never grow)."""
    columns: tuple[tuple[str, str], ...]
    """The regular columns and their CQL types; a missing one can be added in place."""

    @property
    def body(self) -> str:
        """The body of CREATE TABLE: columns and primary key."""
        typed = ", ".join(f"{name} {cql_type}" for name, cql_type in (*self.key, *self.columns))
        partition = ", ".join(name for name, _ in self.key)
        return f"{typed}, PRIMARY KEY (({partition}))"
