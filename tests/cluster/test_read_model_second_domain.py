"""A second domain, declared only in this test's YAML: stock levels, not orders.

The write side is `stock_by_sku` (keyed by SKU); the read model is `stock_by_warehouse`
(keyed by warehouse, then SKU) whose column has another name (`quantity` there,
`on_hand` once selected). The test writes both sides itself with explicit write times, so
every lag and every failure is known exactly; the exporter must report exactly that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from cassandra.cluster import Cluster, Session

from exporter.results import Check
from probes.read_models.base import ReadModelBase
from testbed import TestbedCluster
from tests.support import poll_until, serve_exporter

pytestmark = pytest.mark.cluster

KEYSPACE = f"inventory_{int(time.time()) % 100000}"

READ_MODELS_YAML = """
read_models:
  - name: stock_by_warehouse
    method: audit
    interval: 3s
    timeout: 2500ms
    audit:
      recent_query: >
        SELECT sku, warehouse, quantity, WRITETIME(quantity) AS written_at
        FROM {ks}.stock_by_sku LIMIT :max_rows
      lookup_query: >
        SELECT quantity AS on_hand, WRITETIME(quantity) AS written_at
        FROM {ks}.stock_by_warehouse WHERE warehouse = :warehouse AND sku = :sku
      compare: {{on_hand: quantity}}
      samples_per_run: 1000
      budget: 400
      grace: 5s
      lag_window: 10m
  - name: stock_ledger
    method: checkpoint
    checkpoint:
      head_query: SELECT last_entry_at FROM {ks}.ledger_head WHERE ledger = 'main'
      checkpoint_query: SELECT applied_until FROM {ks}.ledger_projection WHERE projector = 'stock'
  - name: stock_sentinel
    method: sentinel
    interval: 2s
    timeout: 1500ms
    sentinel:
      # The write path here syncs in the request: one batch writes both sides.
      write: >
        BEGIN BATCH
        INSERT INTO {ks}.sentinel_source (sku, warehouse) VALUES (:sentinel_tag, 'sentinel');
        INSERT INTO {ks}.stock_by_warehouse (warehouse, sku, quantity)
        VALUES ('sentinel', :sentinel_tag, 0) USING TTL 3600;
        APPLY BATCH
      read: >
        SELECT sku FROM {ks}.stock_by_warehouse WHERE warehouse = 'sentinel' AND sku = :sentinel_tag
      match: {{sku: sentinel_tag}}
"""

SCHEMA = (
    "CREATE KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', {rf}}}",
    "CREATE TABLE {ks}.stock_by_sku (sku text PRIMARY KEY, warehouse text, quantity int)",
    "CREATE TABLE {ks}.stock_by_warehouse (warehouse text, sku text, quantity int, "
    "PRIMARY KEY ((warehouse), sku))",
    "CREATE TABLE {ks}.sentinel_source (sku text PRIMARY KEY, warehouse text)",
    "CREATE TABLE {ks}.ledger_head (ledger text PRIMARY KEY, last_entry_at timestamp)",
    "CREATE TABLE {ks}.ledger_projection (projector text PRIMARY KEY, applied_until timestamp)",
)

ROWS = 300
MISSING = range(0, 10)
MISMATCHED = range(10, 15)
STALE = range(15, 18)
SYNC_LAG_US = 1_500_000


@pytest.fixture(scope="module")
def session(testbed_cluster: TestbedCluster) -> Iterator[Session]:
    """The second domain's own application session, and its schema."""
    cluster = Cluster(testbed_cluster.contact_points, protocol_version=5)
    session = cluster.connect(wait_for_all_pools=True)
    rf = ", ".join(f"'{dc}': 1" for dc in testbed_cluster.datacenters)
    for statement in SCHEMA:
        session.execute(statement.format(ks=KEYSPACE, rf=rf), timeout=60)
    try:
        yield session
    finally:
        cluster.shutdown()


def write_stock(session: Session) -> None:
    """300 SKUs: in sync 1.5 s after their write, except 10 missing, 5 wrong and 3 stale."""
    now_us = int(time.time() * 1e6)
    source = session.prepare(
        f"INSERT INTO {KEYSPACE}.stock_by_sku (sku, warehouse, quantity) VALUES (?, ?, ?) "
        f"USING TIMESTAMP ?"
    )
    target = session.prepare(
        f"INSERT INTO {KEYSPACE}.stock_by_warehouse (warehouse, sku, quantity) "
        f"VALUES (?, ?, ?) USING TIMESTAMP ?"
    )
    for i in range(ROWS):
        sku, warehouse, quantity = f"SKU-{i:05d}", f"WH-{i % 7}", 10 + i
        written = now_us - 120_000_000 + i * 1000  # two minutes ago: past the grace period
        session.execute(source, (sku, warehouse, quantity, written))
        if i in MISSING:
            continue
        if i in MISMATCHED:
            session.execute(target, (warehouse, sku, quantity + 1, written + SYNC_LAG_US))
        elif i in STALE:
            session.execute(target, (warehouse, sku, quantity - 1, written - 5_000_000))
        else:
            session.execute(target, (warehouse, sku, quantity, written + SYNC_LAG_US))


def set_ledger(session: Session, head: float, applied: float) -> None:
    session.execute(
        f"UPDATE {KEYSPACE}.ledger_head SET last_entry_at = %s WHERE ledger = 'main'",
        (int(head * 1000),),
    )
    session.execute(
        f"UPDATE {KEYSPACE}.ledger_projection SET applied_until = %s WHERE projector = 'stock'",
        (int(applied * 1000),),
    )


async def test_a_domain_declared_only_in_yaml_is_measured_exactly(
    session: Session, make_config: Callable[..., dict[str, Any]]
) -> None:
    await asyncio.to_thread(write_stock, session)
    long_ago = time.time() - 100.0
    await asyncio.to_thread(set_ledger, session, long_ago, long_ago)
    declared = yaml.safe_load(READ_MODELS_YAML.format(ks=KEYSPACE))
    config = make_config({"probes": {"latency": {"enabled": False},
                                     "replication": {"enabled": False}}, **declared})

    async with serve_exporter(config) as running:
        probes = {p.read_model.name: p for p in running.exporter.probes
                  if isinstance(p, ReadModelBase)}
        audit, ledger, sentinel = (probes[n] for n in
                                   ("stock_by_warehouse", "stock_ledger", "stock_sentinel"))

        def sample(name: str, **labels: str) -> float | None:
            return running.sample(name, labels)

        await poll_until(lambda: audit.checks >= ROWS, timeout=60, message="every SKU checked")
        await poll_until(lambda: ledger.lag is not None, timeout=20, message="a ledger reading")
        idle_lag = ledger.lag
        # A new ledger entry 3 s old that the projection has not applied yet.
        entry = time.time() - 3.0
        await asyncio.to_thread(set_ledger, session, entry, long_ago)
        measured_from = time.time()
        await poll_until(lambda: (ledger.lag or 0) >= 3.0, timeout=20, message="ledger lag")
        behind = ledger.lag
        behind_bound = 3.0 + (time.time() - measured_from) + 0.5
        await asyncio.to_thread(set_ledger, session, entry, entry)
        await poll_until(lambda: ledger.lag == 0.0, timeout=20, message="ledger caught up")
        await poll_until(lambda: sentinel.checks >= 2, timeout=30, message="two sentinels")

        sentinel_rows = sample("cqrs_sync_checks_total", read_model="stock_sentinel")
        failures = {reason: sample("cqrs_sync_failures_total", read_model="stock_by_warehouse",
                                   reason=reason) for reason in ("missing", "mismatch", "stale")}
        checks = sample("cqrs_sync_checks_total", read_model="stock_by_warehouse")
        lag = sample("cqrs_read_model_sync_lag_seconds", read_model="stock_by_warehouse")
        ratio = next(o for o in audit.observations() if o.check is Check.SYNC_FAILURE_RATE)
        sentinel_lag = sentinel.lag
        sentinel_failures = sum(sentinel.failures.values())

    assert checks == ROWS
    assert failures == {"missing": len(MISSING), "mismatch": len(MISMATCHED), "stale": len(STALE)}
    assert ratio.value == pytest.approx(18 / ROWS) and ratio.samples == ROWS
    assert lag == pytest.approx(SYNC_LAG_US / 1e6, abs=1e-6)
    assert idle_lag == 0.0  # the last entry is 100 s old and applied: idle is not lag
    assert behind is not None and 3.0 <= behind <= behind_bound
    assert sentinel_rows is not None and sentinel_rows >= 2 and sentinel_failures == 0
    assert sentinel_lag is not None and sentinel_lag < 1.0
