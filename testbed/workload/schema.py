"""The reference CQRS workload's schema: the order domain of the CQRS pattern, in one keyspace.

Write side: `orders_by_id` (the command model) and `events` (the event store, partitioned by
aggregate with a TIMEUUID clustering key) with `event_feed`, the day-bucketed index a
projector reads in order. Read side: `orders_by_customer` and `orders_by_date`. The projector
keeps its position in `projection_checkpoints`.
"""

from __future__ import annotations

import re

DEFAULT_KEYSPACE = "shop"
PROJECTOR = "orders"
"""The projector's name: its row in projection_checkpoints."""
RESERVED_ID = "00000000-0000-0000-0000-000000000000"
"""An aggregate and customer no command ever uses: sentinels live there."""

_KEYSPACE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")

TABLES = (
    "CREATE TYPE IF NOT EXISTS {ks}.order_item (sku text, quantity int, price decimal)",
    # Write-optimized: partition by order_id for direct lookups.
    "CREATE TABLE IF NOT EXISTS {ks}.orders_by_id ("
    " order_id uuid PRIMARY KEY, customer_id uuid, items list<frozen<order_item>>,"
    " total decimal, status text, created_at timestamp)",
    # Lets an audit ask for recent write-side rows without a scan.
    "CREATE INDEX IF NOT EXISTS orders_by_id_created_at ON {ks}.orders_by_id (created_at)"
    " USING 'sai'",
    "CREATE TABLE IF NOT EXISTS {ks}.orders_by_customer ("
    " customer_id uuid, created_at timestamp, order_id uuid, total decimal, status text,"
    " PRIMARY KEY ((customer_id), created_at, order_id))"
    " WITH CLUSTERING ORDER BY (created_at DESC, order_id ASC)",
    "CREATE TABLE IF NOT EXISTS {ks}.orders_by_date ("
    " order_date date, created_at timestamp, order_id uuid, customer_id uuid, total decimal,"
    " PRIMARY KEY ((order_date), created_at, order_id))"
    " WITH CLUSTERING ORDER BY (created_at DESC, order_id ASC)",
    "CREATE TABLE IF NOT EXISTS {ks}.events ("
    " aggregate_id uuid, event_id timeuuid, event_type text, event_data blob,"
    " metadata map<text, text>, PRIMARY KEY ((aggregate_id), event_id))"
    " WITH CLUSTERING ORDER BY (event_id ASC)",
    # One partition per UTC day: the projector reads it in event_id order from its checkpoint.
    "CREATE TABLE IF NOT EXISTS {ks}.event_feed ("
    " day date, event_id timeuuid, aggregate_id uuid, event_type text,"
    " PRIMARY KEY ((day), event_id)) WITH CLUSTERING ORDER BY (event_id ASC)",
    "CREATE TABLE IF NOT EXISTS {ks}.projection_checkpoints ("
    " projector text PRIMARY KEY, position timeuuid, updated_at timestamp)",
)

READ_MODEL_TABLES = ("orders_by_customer", "orders_by_date")


def check_keyspace(keyspace: str) -> str:
    if not _KEYSPACE.fullmatch(keyspace):
        raise ValueError(f"keyspace {keyspace!r} must be letters, digits and '_' (48 at most)")
    return keyspace


def keyspace_statement(keyspace: str, replication: dict[str, int]) -> str:
    options = ", ".join(f"'{dc}': {rf}" for dc, rf in replication.items())
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {check_keyspace(keyspace)} WITH replication = "
        f"{{'class': 'NetworkTopologyStrategy', {options}}}"
    )


def schema_statements(keyspace: str, replication: dict[str, int]) -> list[str]:
    """Every statement that creates the workload's schema, keyspace first."""
    ks = check_keyspace(keyspace)
    return [keyspace_statement(ks, replication), *(t.format(ks=ks) for t in TABLES)]


def schema_cql(keyspace: str, replication: dict[str, int]) -> str:
    """The schema as a CQL script, e.g. for cqlsh."""
    return "".join(f"{statement};\n" for statement in schema_statements(keyspace, replication))
