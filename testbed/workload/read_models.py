"""How the exporter declares the reference workload's read models: one builder per method."""

from __future__ import annotations

from typing import Any

from testbed.workload.schema import PROJECTOR, RESERVED_ID

SENTINEL_CREATED_AT = 0
"""The reserved sentinel order's created_at (the epoch): one fixed row, overwritten each time."""


def audit_orders_by_customer(keyspace: str, **audit: Any) -> dict[str, Any]:
    return {
        "name": "orders_by_customer",
        "method": "audit",
        "audit": {
            "recent_query": (
                f"SELECT order_id, customer_id, created_at, total, status, "
                f"WRITETIME(status) AS written_at FROM {keyspace}.orders_by_id "
                f"WHERE created_at > :since AND token(order_id) >= :start_token LIMIT :max_rows"
            ),
            "lookup_query": (
                f"SELECT total, status, WRITETIME(status) AS written_at FROM "
                f"{keyspace}.orders_by_customer WHERE customer_id = :customer_id "
                f"AND created_at = :created_at AND order_id = :order_id"
            ),
            "compare": ["total", "status"],
            **audit,
        },
    }


def audit_orders_by_date(keyspace: str, **audit: Any) -> dict[str, Any]:
    return {
        "name": "orders_by_date",
        "method": "audit",
        "audit": {
            "sample_query": (
                f"SELECT order_id, customer_id, created_at, toDate(created_at) AS order_date, "
                f"total, WRITETIME(total) AS written_at FROM {keyspace}.orders_by_id "
                f"WHERE token(order_id) >= :start_token LIMIT :max_rows"
            ),
            "lookup_query": (
                f"SELECT customer_id, total, WRITETIME(total) AS written_at FROM "
                f"{keyspace}.orders_by_date WHERE order_date = :order_date "
                f"AND created_at = :created_at AND order_id = :order_id"
            ),
            "compare": ["customer_id", "total"],
            **audit,
        },
    }


def checkpoint_projection(keyspace: str, **schedule: Any) -> dict[str, Any]:
    return {
        "name": "orders_projection",
        "method": "checkpoint",
        **schedule,
        "checkpoint": {
            "head_query": (
                f"SELECT event_id FROM {keyspace}.event_feed WHERE day = currentDate() "
                f"ORDER BY event_id DESC LIMIT 1"
            ),
            "checkpoint_query": (
                f"SELECT position FROM {keyspace}.projection_checkpoints "
                f"WHERE projector = '{PROJECTOR}'"
            ),
        },
    }


def sentinel_projection(keyspace: str, **sentinel: Any) -> dict[str, Any]:
    payload = (
        f'{{"order_id": "{RESERVED_ID}", "customer_id": "{RESERVED_ID}", '
        f'"created_at": {SENTINEL_CREATED_AT}, "total": "0", "status": "$sentinel_tag"}}'
    )
    return {
        "name": "orders_sentinel",
        "method": "sentinel",
        "sentinel": {
            "write": (
                f"BEGIN BATCH "
                f"INSERT INTO {keyspace}.events (aggregate_id, event_id, event_type, event_data) "
                f"VALUES ({RESERVED_ID}, :sentinel_id, 'OrderCreated', textAsBlob(:payload)) "
                f"USING TTL 86400; "
                f"INSERT INTO {keyspace}.event_feed (day, event_id, aggregate_id, event_type) "
                f"VALUES (:sentinel_date, :sentinel_id, {RESERVED_ID}, 'OrderCreated') "
                f"USING TTL 86400; APPLY BATCH"
            ),
            "read": (
                f"SELECT status FROM {keyspace}.orders_by_customer WHERE customer_id = "
                f"{RESERVED_ID} AND created_at = {SENTINEL_CREATED_AT} AND order_id = {RESERVED_ID}"
            ),
            "match": {"status": "sentinel_tag"},
            "params": {"payload": payload},
            **sentinel,
        },
    }
