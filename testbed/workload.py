"""The reference CQRS workload: an order service that keeps its read models in sync three ways.

Commands (create an order; optionally change an order's status) arrive at a fixed rate. The
command writes `orders_by_id` and, by the current sync mode:

- `in-request`: writes `orders_by_customer` and `orders_by_date` in the same logged batch as
  `orders_by_id` (the pattern's synchronous sync: one request, one write time);
- `async`: hands the sync to a consumer that writes them after an injected delay;
- `projection`: appends the event to `events` (and `event_feed`); a projector reads the feed
  in order from its checkpoint, projects each event, and advances the checkpoint.

An injected failure rate drops read-model writes or writes a wrong total. Every knob can be
changed while the workload runs, and the projector can be stopped and started. Usable as an
asyncio object (`Workload`), from a thread (`WorkloadThread`), or as a process:
`python -m testbed.workload --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import (
    BatchStatement,
    BatchType,
    BoundStatement,
    PreparedStatement,
    Statement,
)
from cassandra.util import max_uuid_from_time

from testbed.workload_faults import Delay, FailureKind, Fate, decide
from testbed.workload_schema import (
    DEFAULT_KEYSPACE,
    PROJECTOR,
    READ_MODEL_TABLES,
    check_keyspace,
    schema_statements,
)

log = logging.getLogger("testbed.workload")

STATUSES = ("PAID", "SHIPPED", "DELIVERED")
WRONG_OFFSET = Decimal("0.01")


class SyncMode(StrEnum):
    IN_REQUEST = "in-request"
    ASYNC = "async"
    PROJECTION = "projection"


@dataclass
class Knobs:
    """What the workload does; change any field while it runs."""

    rate: float = 10.0
    """Commands per second, at fixed intended start times."""
    mode: SyncMode = SyncMode.IN_REQUEST
    delay: Delay = field(default_factory=Delay)
    """How long a sync waits: each asynchronous sync (async mode), or how old an event must
    be before the projector takes it (projection mode)."""
    failure_rate: float = 0.0
    """Fraction of read-model writes that fail."""
    failure_kind: FailureKind = FailureKind.DROP
    update_share: float = 0.0
    """Fraction of commands that change the status of a recent order instead of creating one."""


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


@dataclass
class WorkloadStats:
    """Ground truth: what the workload did, for tests to compare with what was measured."""

    commands: int = 0
    command_errors: int = 0
    skipped: int = 0
    """Commands not started because too many were in flight."""
    fates: dict[str, Counter[str]] = field(
        default_factory=lambda: {table: Counter() for table in READ_MODEL_TABLES}
    )
    events_appended: int = 0
    events_projected: int = 0
    sync_errors: int = 0
    sync_lags: deque[tuple[float, str, float]] = field(default_factory=lambda: deque(maxlen=20_000))
    """(wall time, table, lag) of recent read-model writes: the time from the start of the
    write-side write to the start of the read-model write, i.e. the WRITETIME difference."""

    def record(self, table: str, fate: Fate) -> None:
        self.fates[table][fate.value] += 1

    def true_lags(self, since: float = 0.0, table: str | None = None) -> list[float]:
        """The actual sync lags of read-model writes made at or after `since` (wall time)."""
        return [lag for at, name, lag in list(self.sync_lags)
                if at >= since and (table is None or name == table)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "commands": self.commands,
            "command_errors": self.command_errors,
            "skipped": self.skipped,
            "events_appended": self.events_appended,
            "events_projected": self.events_projected,
            "sync_errors": self.sync_errors,
            "read_model_writes": {t: dict(c) for t, c in self.fates.items()},
        }


def _now_ms() -> datetime:
    """Now in UTC, truncated to the millisecond a CQL timestamp keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _bridge(future: ResponseFuture) -> asyncio.Future[list[Any]]:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()

    def settle(rows: Any, error: BaseException | None) -> None:
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(list(rows) if rows else [])

    def deliver(rows: Any = None, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(settle, rows, error)

    future.add_callbacks(lambda rows: deliver(rows), lambda exc: deliver(None, exc))
    return result


class Workload:
    """The order service, its async consumer and its projector, on one driver session."""

    def __init__(
        self,
        contact_points: Sequence[str],
        write_datacenter: str,
        *,
        keyspace: str = DEFAULT_KEYSPACE,
        knobs: Knobs | None = None,
        replication: dict[str, int] | None = None,
        port: int = 9042,
        customers: int = 200,
        max_in_flight: int = 256,
        projector_poll: float = 0.05,
        projector_settle: float = 0.2,
        projector_batch: int = 200,
        seed: int | None = None,
    ) -> None:
        self.contact_points = list(contact_points)
        self.write_datacenter = write_datacenter
        self.keyspace = check_keyspace(keyspace)
        self.knobs = knobs or Knobs()
        self.replication = replication or {write_datacenter: 1}
        self.port = port
        self.max_in_flight = max_in_flight
        self.projector_poll = projector_poll
        self.projector_settle = projector_settle
        """Events younger than this are left for the next pass: writes still in flight may
        carry an older TIMEUUID than an event already visible."""
        self.projector_batch = projector_batch
        self.stats = WorkloadStats()
        self._rng = random.Random(seed)
        # Fates draw from their own generator: with a seed, N syncs fail the same way however
        # the commands interleave.
        self._fault_rng = random.Random(None if seed is None else seed + 1)
        self._customers = [uuid.UUID(int=self._rng.getrandbits(128), version=4)
                           for _ in range(customers)]
        self._recent: deque[Order] = deque(maxlen=1000)
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._projector_task: asyncio.Task[None] | None = None
        self._projector_stop: asyncio.Event | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pending_syncs: set[asyncio.Task[None]] = set()
        self._running = False

    # --- connection ---------------------------------------------------------------

    def _connect_blocking(self) -> tuple[Cluster, Session]:
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=self.write_datacenter)
            ),
            consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            request_timeout=10.0,
        )
        cluster = Cluster(
            contact_points=self.contact_points,
            port=self.port,
            protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=10.0,
            control_connection_timeout=10.0,
        )
        try:
            return cluster, cluster.connect(wait_for_all_pools=True)
        except BaseException:
            cluster.shutdown()
            raise

    async def connect(self) -> None:
        if self._session is not None:
            return
        loop = asyncio.get_running_loop()
        self._cluster, self._session = await loop.run_in_executor(None, self._connect_blocking)

    async def execute(self, query: str | Statement, params: Any = None,
                      *, timeout: float = 10.0) -> list[Any]:
        """Run one statement through the workload's session (LOCAL_QUORUM, write DC)."""
        if self._session is None:
            raise RuntimeError("the workload is not connected")
        return await _bridge(self._session.execute_async(query, params, timeout=timeout))

    async def _prepare(self, query: str) -> PreparedStatement:
        statement = self._prepared.get(query)
        if statement is None:
            assert self._session is not None
            loop = asyncio.get_running_loop()
            statement = await loop.run_in_executor(None, self._session.prepare, query)
            self._prepared[query] = statement
        return statement

    async def _run(self, query: str, params: Sequence[Any]) -> list[Any]:
        return await self.execute(await self._prepare(query.format(ks=self.keyspace)), params)

    async def create_schema(self) -> None:
        """Create the keyspace and tables if absent, waiting for schema agreement."""
        await self.connect()
        for statement in schema_statements(self.keyspace, self.replication):
            await self.execute(statement, timeout=60.0)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, *, create_schema: bool = True, projector: bool = True) -> None:
        """Connect, create the schema, and start issuing commands (and projecting)."""
        await self.connect()
        if create_schema:
            await self.create_schema()
        self._running = True
        self._loop_task = asyncio.create_task(self._command_loop(), name="workload-commands")
        if projector:
            self.start_projector()

    async def stop(self, *, drain: float = 15.0) -> None:
        """Stop issuing commands; let in-flight commands and pending syncs finish (up to
        `drain` seconds), stop the projector, and close the session."""
        self._running = False
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        waiting = self._in_flight | self._pending_syncs
        if waiting and drain > 0:
            await asyncio.wait(waiting, timeout=drain)
        for task in self._in_flight | self._pending_syncs:
            task.cancel()
        await asyncio.gather(*self._in_flight, *self._pending_syncs, return_exceptions=True)
        await self.stop_projector()
        await self.close()

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.get_running_loop().run_in_executor(None, cluster.shutdown)

    @property
    def pending_syncs(self) -> int:
        return len(self._pending_syncs)

    # --- commands -------------------------------------------------------------------

    async def _command_loop(self) -> None:
        rate = self.knobs.rate
        started, issued = time.monotonic(), 0
        while self._running:
            if self.knobs.rate != rate:  # a new rate restarts the schedule from now
                rate, started, issued = self.knobs.rate, time.monotonic(), 0
            if rate <= 0:
                await asyncio.sleep(0.1)
                continue
            due = started + issued / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(min(delay, 0.1))
                continue
            issued += 1
            if len(self._in_flight) >= self.max_in_flight:
                self.stats.skipped += 1
                continue
            task = asyncio.create_task(self.command())
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def run_commands(self, count: int, concurrency: int = 32) -> None:
        """Issue `count` commands as fast as `concurrency` allows, outside the rate schedule."""
        queue = iter(range(count))

        async def worker() -> None:
            for _ in queue:
                await self.command()

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))

    async def command(self) -> None:
        """Handle one command as the knobs say (create, or change a status)."""
        try:
            if self._recent and self._rng.random() < self.knobs.update_share:
                await self.change_status(self._rng.choice(self._recent))
            else:
                await self.create_order()
            self.stats.commands += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.command_errors += 1
            log.debug("command failed: %s", exc)

    def _new_order(self) -> Order:
        rng = self._rng
        items = tuple(
            (f"SKU-{rng.randrange(1000):04d}", rng.randint(1, 5),
             Decimal(rng.randrange(100, 10_000)) / 100)
            for _ in range(rng.randint(1, 3))
        )
        total = sum((q * p for _, q, p in items), Decimal(0))
        return Order(uuid.uuid4(), rng.choice(self._customers), _now_ms(), total, "PENDING", items)

    async def create_order(self) -> Order:
        order = replace(self._new_order(), written_at=time.time())
        await self._write(order, created=True, source=(
            "INSERT INTO {ks}.orders_by_id (order_id, customer_id, items, total, status, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (order.order_id, order.customer_id, list(order.items), order.total, order.status,
             order.created_at),
        ))
        self._recent.append(order)
        return order

    async def change_status(self, order: Order) -> Order:
        changed = replace(order, status=self._rng.choice(STATUSES), written_at=time.time())
        await self._write(changed, created=False, source=(
            "UPDATE {ks}.orders_by_id SET status = ? WHERE order_id = ?",
            (changed.status, changed.order_id),
        ))
        return changed

    async def _write(self, order: Order, *, created: bool,
                     source: tuple[str, Sequence[Any]]) -> None:
        """The write side's write, and the read models' sync as the mode says."""
        mode = self.knobs.mode
        write = await self._bound(*source)
        if mode is SyncMode.IN_REQUEST:
            # The pattern's synchronous sync: every table in one logged batch, so the read
            # models carry the write's own timestamp.
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            batch.add(write)
            for table, statement in await self._read_model_writes(order, created):
                batch.add(statement)
                self.stats.sync_lags.append((time.time(), table, 0.0))
            await self.execute(batch)
            return
        await self.execute(write)
        if mode is SyncMode.ASYNC:
            delay = self.knobs.delay.sample(self._rng)
            task = asyncio.create_task(self._apply_later(order, created, delay))
            self._pending_syncs.add(task)
            task.add_done_callback(self._pending_syncs.discard)
        else:
            await self.append_event(order, created=created)

    async def _apply_later(self, order: Order, created: bool, delay: float) -> None:
        # The delay counts from the write-side write, as its WRITETIME does.
        await asyncio.sleep(max(0.0, order.written_at + delay - time.time()))
        try:
            await self.apply(order, created=created)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.sync_errors += 1
            log.debug("asynchronous sync failed: %s", exc)

    async def apply(self, order: Order, *, created: bool) -> None:
        """Write the order into each read model, each write subject to injected failure."""
        writes = await self._read_model_writes(order, created)
        now = time.time()
        if order.written_at:
            for table, _ in writes:
                self.stats.sync_lags.append((now, table, now - order.written_at))
        await asyncio.gather(*(self.execute(statement) for _, statement in writes))

    async def _read_model_writes(self, order: Order,
                                 created: bool) -> list[tuple[str, BoundStatement]]:
        """The read-model writes of one sync, after injected failures."""
        # Every fate is drawn before any await, so a seeded workload fails the same syncs
        # however its commands interleave.
        tables = READ_MODEL_TABLES if created else ("orders_by_customer",)  # no status by date
        fates = {}
        for table in tables:
            fates[table] = decide(self._fault_rng, self.knobs.failure_rate,
                                  self.knobs.failure_kind)
            self.stats.record(table, fates[table])
        writes = []
        for table, fate in fates.items():
            if fate is Fate.DROPPED:
                continue
            total = order.total + WRONG_OFFSET if fate is Fate.WRONG else order.total
            writes.append((table, await self._bound(*_read_model_write(table, order, total,
                                                                       created))))
        return writes

    async def _bound(self, query: str, params: Sequence[Any]) -> BoundStatement:
        return (await self._prepare(query.format(ks=self.keyspace))).bind(params)

    # --- event store and projector ----------------------------------------------------

    async def append_event(self, order: Order, *, created: bool) -> uuid.UUID:
        """Append the order's event to the event store and to the day's feed."""
        event_id = uuid.uuid1()
        event_type = "OrderCreated" if created else "OrderStatusChanged"
        day = datetime.fromtimestamp(_uuid_seconds(event_id), UTC).date()
        await asyncio.gather(
            self._run(
                "INSERT INTO {ks}.events (aggregate_id, event_id, event_type, event_data) "
                "VALUES (?, ?, ?, ?)",
                (order.order_id, event_id, event_type, order.payload()),
            ),
            self._run(
                "INSERT INTO {ks}.event_feed (day, event_id, aggregate_id, event_type) "
                "VALUES (?, ?, ?, ?)",
                (day, event_id, order.order_id, event_type),
            ),
        )
        self.stats.events_appended += 1
        return event_id

    @property
    def projector_running(self) -> bool:
        return self._projector_task is not None and not self._projector_task.done()

    def start_projector(self) -> None:
        if self.projector_running:
            return
        self._projector_stop = asyncio.Event()
        self._projector_task = asyncio.create_task(self._projector_loop(self._projector_stop),
                                                   name="workload-projector")

    async def stop_projector(self) -> None:
        """Stop the projector after the batch it is on; its checkpoint stays where it is."""
        task, stop = self._projector_task, self._projector_stop
        self._projector_task = None
        if task is None or stop is None:
            return
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def checkpoint(self) -> uuid.UUID | None:
        rows = await self._run(
            "SELECT position FROM {ks}.projection_checkpoints WHERE projector = ?", (PROJECTOR,)
        )
        return rows[0].position if rows else None

    async def _projector_loop(self, stop: asyncio.Event) -> None:
        position: uuid.UUID | None = None
        while not stop.is_set():
            try:
                if position is None:
                    position = await self.checkpoint()
                position = await self.project_once(position)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.sync_errors += 1
                log.debug("projector pass failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.projector_poll)

    async def project_once(self, position: uuid.UUID | None) -> uuid.UUID | None:
        """Project every settled event after `position`; return the new position."""
        wait = max(self.projector_settle, self.knobs.delay.sample(self._rng))
        upper_time = time.time() - wait
        upper = max_uuid_from_time(upper_time)
        if position is None:
            # A projector without a checkpoint starts at the beginning of today's feed.
            first_day = datetime.fromtimestamp(upper_time, UTC).date()
            after: uuid.UUID | None = None
        else:
            first_day = datetime.fromtimestamp(_uuid_seconds(position), UTC).date()
            after = position
        last_day = datetime.fromtimestamp(upper_time, UTC).date()
        day: date = first_day
        while day <= last_day:
            while True:
                if after is None:
                    rows = await self._run(
                        "SELECT event_id, aggregate_id FROM {ks}.event_feed WHERE day = ? "
                        "AND event_id <= ? LIMIT ?",
                        (day, upper, self.projector_batch),
                    )
                else:
                    rows = await self._run(
                        "SELECT event_id, aggregate_id FROM {ks}.event_feed WHERE day = ? "
                        "AND event_id > ? AND event_id <= ? LIMIT ?",
                        (day, after, upper, self.projector_batch),
                    )
                if not rows:
                    break
                done = await self._project_batch(rows)
                if done is None:
                    return position  # an event is not readable yet; retry from here
                position = after = done
                await self._run(
                    "UPDATE {ks}.projection_checkpoints SET position = ?, updated_at = ? "
                    "WHERE projector = ?",
                    (position, datetime.now(UTC), PROJECTOR),
                )
                if len(rows) < self.projector_batch:
                    break
            day += timedelta(days=1)
        return position

    async def _project_batch(self, rows: list[Any]) -> uuid.UUID | None:
        """Apply a batch of feed entries in order per aggregate; the last event id, or None."""
        events = await asyncio.gather(*(
            self._run(
                "SELECT event_type, event_data FROM {ks}.events WHERE aggregate_id = ? "
                "AND event_id = ?",
                (row.aggregate_id, row.event_id),
            )
            for row in rows
        ))
        if any(not found for found in events):
            return None
        by_aggregate: dict[uuid.UUID, list[Any]] = {}
        for row, found in zip(rows, events, strict=True):
            by_aggregate.setdefault(row.aggregate_id, []).append(found[0])

        async def project(items: list[Any]) -> None:
            for event in items:
                order = Order.from_payload(event.event_data)
                await self.apply(order, created=event.event_type == "OrderCreated")

        await asyncio.gather(*(project(items) for items in by_aggregate.values()))
        self.stats.events_projected += len(rows)
        return rows[-1].event_id

    async def projector_caught_up(self) -> bool:
        """Whether the checkpoint has reached the newest event appended by this workload."""
        position = await self.checkpoint()
        newest = await self._run(
            "SELECT event_id FROM {ks}.event_feed WHERE day = ? ORDER BY event_id DESC LIMIT 1",
            (datetime.now(UTC).date(),),
        )
        if not newest:
            return True
        return position is not None and _uuid_seconds(position) >= _uuid_seconds(
            newest[0].event_id
        )


def _read_model_write(table: str, order: Order, total: Decimal,
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


def _uuid_seconds(value: uuid.UUID) -> float:
    """Unix seconds of a version-1 (time) UUID."""
    return (value.time - 0x01B21DD213814000) / 1e7


class WorkloadThread:
    """A `Workload` on its own event loop in a background thread, for synchronous callers."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="workload",
                                        daemon=True)

    @property
    def knobs(self) -> Knobs:
        return self.workload.knobs

    def call(self, coroutine: Any, timeout: float = 120.0) -> Any:
        """Run a coroutine on the workload's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, **kwargs: Any) -> WorkloadThread:
        self._thread.start()
        self.call(self.workload.start(**kwargs))
        return self

    def stop(self, drain: float = 15.0) -> None:
        try:
            self.call(self.workload.stop(drain=drain), timeout=drain + 60.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def stop_projector(self) -> None:
        self.call(self.workload.stop_projector())

    def start_projector(self) -> None:
        self._loop.call_soon_threadsafe(self.workload.start_projector)


# --- the command line -------------------------------------------------------------------


def _testbed_defaults() -> tuple[list[str], str, dict[str, int]]:
    """Contact points, write datacenter and replication of the local testbed, if one is up."""
    try:
        from testbed.cluster import TestbedCluster

        cluster = TestbedCluster.load()
    except Exception:
        return ["127.0.0.1"], "us-east", {"us-east": 1}
    return (list(cluster.contact_points), cluster.write_datacenter,
            dict.fromkeys(cluster.datacenters, 1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.workload",
        description="Run the reference CQRS order workload against Cassandra.",
    )
    parser.add_argument("--contact-points", nargs="+", help="default: the local testbed")
    parser.add_argument("--datacenter", help="the write datacenter (default: the testbed's)")
    parser.add_argument("--keyspace", default=DEFAULT_KEYSPACE)
    parser.add_argument("--replication", help="per datacenter, e.g. us-east:3,eu-west:3")
    parser.add_argument("--rate", type=float, default=10.0, help="commands per second")
    parser.add_argument("--mode", choices=[m.value for m in SyncMode],
                        default=SyncMode.IN_REQUEST.value)
    parser.add_argument("--delay", default="0s",
                        help="async sync delay: 2s, uniform:1s..3s, exp:2s, normal:2s,500ms")
    parser.add_argument("--failure-rate", type=float, default=0.0,
                        help="fraction of read-model writes that fail, e.g. 0.01")
    parser.add_argument("--failure-kind", choices=[k.value for k in FailureKind],
                        default=FailureKind.DROP.value)
    parser.add_argument("--update-share", type=float, default=0.0,
                        help="fraction of commands that change an order's status")
    parser.add_argument("--no-projector", action="store_true", help="leave the projector off")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--print-schema", action="store_true",
                        help="print the schema as CQL and exit")
    return parser


def _replication(text: str | None, default: dict[str, int]) -> dict[str, int]:
    if not text:
        return default
    result = {}
    for part in text.split(","):
        dc, sep, rf = part.partition(":")
        if not sep or not rf.strip().isdigit():
            raise ValueError(f"--replication: {part!r} is not DATACENTER:FACTOR")
        result[dc.strip()] = int(rf)
    return result


async def _run_cli(workload: Workload, duration: float | None, projector: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await workload.start(projector=projector)
    log.info("workload running: %s", workload.knobs)
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.is_set():
        timeout = 10.0 if deadline is None else max(0.0, min(10.0, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        print(json.dumps(workload.stats.as_dict()), flush=True)
        if deadline is not None and time.monotonic() >= deadline:
            break
    await workload.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    points, write_dc, replication = _testbed_defaults()
    try:
        keyspace = check_keyspace(args.keyspace)
        replication = _replication(args.replication, replication)
        delay = Delay.parse(args.delay)
        if not 0 <= args.failure_rate <= 1 or not 0 <= args.update_share <= 1:
            raise ValueError("--failure-rate and --update-share must be between 0 and 1")
        if args.rate < 0:
            raise ValueError("--rate must not be negative")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_schema:
        from testbed.workload_schema import schema_cql

        print(schema_cql(keyspace, replication), end="")
        return 0
    knobs = Knobs(rate=args.rate, mode=SyncMode(args.mode), delay=delay,
                  failure_rate=args.failure_rate, failure_kind=FailureKind(args.failure_kind),
                  update_share=args.update_share)
    workload = Workload(args.contact_points or points, args.datacenter or write_dc,
                        keyspace=keyspace, knobs=knobs, replication=replication)
    try:
        asyncio.run(_run_cli(workload, args.duration, not args.no_projector))
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
