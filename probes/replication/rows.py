"""The sentinel row: one per writer and source datacenter, in the monitoring keyspace.

The writer overwrites it each round with a new sequence; visibility reads look for that
sequence in the read datacenters, and a regional exporter reads its `written_at` as the
writer's heartbeat.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from exporter.tables import Table

SENTINELS = Table(
    # Overwritten each round with every column set (no nulls, no deletes, no TTL): no growing
    # partitions, no tombstones. The incarnation tells a restarted writer's sentinels from its
    # previous life's; written_at is the regional heartbeat.
    "replication_sentinels",
    key=(("writer_id", "text"), ("source_datacenter", "text")),
    columns=(("incarnation", "uuid"), ("sequence", "bigint"), ("written_at", "timestamp")),
)


def insert_cql(keyspace: str) -> str:
    return (
        f"INSERT INTO {keyspace}.{SENTINELS.name} "
        "(writer_id, source_datacenter, incarnation, sequence, written_at) VALUES (?, ?, ?, ?, ?)"
    )


def select_cql(keyspace: str) -> str:
    return (
        f"SELECT incarnation, sequence, written_at FROM {keyspace}.{SENTINELS.name} "
        "WHERE writer_id = ? AND source_datacenter = ?"
    )


def written_at_seconds(row: Any) -> float | None:
    """The row's `written_at` (the writer's wall clock) as Unix seconds."""
    value = getattr(row, "written_at", None)
    if value is None:
        return None
    return float(value.replace(tzinfo=UTC).timestamp())
