"""The order domain: an order, how a new one is made up, and how it is written into a read model."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

STATUSES = ("PAID", "SHIPPED", "DELIVERED")
WRONG_OFFSET = Decimal("0.01")
"""What a wrong read-model write adds to the total."""


@dataclass(frozen=True)
class Order:
    order_id: uuid.UUID
    customer_id: uuid.UUID
    created_at: datetime
    total: Decimal
    status: str
    items: tuple[tuple[str, int, Decimal], ...] = ()
    written_at: float = 0.0
    """Wall time at which the write-side write of this version began (≈ its WRITETIME)."""

    def payload(self) -> bytes:
        return json.dumps(
            {
                "order_id": str(self.order_id),
                "customer_id": str(self.customer_id),
                "created_at": int(self.created_at.timestamp() * 1000),
                "total": str(self.total),
                "status": self.status,
                "written_at": self.written_at,
            }
        ).encode()

    @classmethod
    def from_payload(cls, data: bytes) -> Order:
        fields = json.loads(data)
        return cls(
            order_id=uuid.UUID(fields["order_id"]),
            customer_id=uuid.UUID(fields["customer_id"]),
            created_at=datetime.fromtimestamp(int(fields["created_at"]) / 1000, UTC),
            total=Decimal(str(fields["total"])),
            status=str(fields["status"]),
            written_at=float(fields.get("written_at", 0.0)),
        )


def now_ms() -> datetime:
    """Now in UTC, truncated to the millisecond a CQL timestamp keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_order(rng: random.Random, customers: Sequence[uuid.UUID]) -> Order:
    """A pending order of one to three items for one of `customers`, created now."""
    items = tuple(
        (f"SKU-{rng.randrange(1000):04d}", rng.randint(1, 5),
         Decimal(rng.randrange(100, 10_000)) / 100)
        for _ in range(rng.randint(1, 3))
    )
    total = sum((q * p for _, q, p in items), Decimal(0))
    return Order(uuid.uuid4(), rng.choice(customers), now_ms(), total, "PENDING", items)


def read_model_write(table: str, order: Order, total: Decimal,
                     created: bool) -> tuple[str, tuple[Any, ...]]:
    """The CQL and values that write one order into one read model."""
    if table == "orders_by_date":
        return (
            "INSERT INTO {ks}.orders_by_date (order_date, created_at, order_id, customer_id, "
            "total) VALUES (?, ?, ?, ?, ?)",
            (order.created_at.date(), order.created_at, order.order_id, order.customer_id,
             total),
        )
    if created:
        return (
            "INSERT INTO {ks}.orders_by_customer (customer_id, created_at, order_id, total, "
            "status) VALUES (?, ?, ?, ?, ?)",
            (order.customer_id, order.created_at, order.order_id, total, order.status),
        )
    return (
        "UPDATE {ks}.orders_by_customer SET status = ?, total = ? WHERE customer_id = ? "
        "AND created_at = ? AND order_id = ?",
        (order.status, total, order.customer_id, order.created_at, order.order_id),
    )
