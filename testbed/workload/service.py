"""The order service: commands at a fixed rate, and the read models' sync as the mode says."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cassandra.query import BatchStatement, BatchType, BoundStatement, Statement

from testbed.workload.faults import Fate, decide
from testbed.workload.knobs import Knobs, SyncMode
from testbed.workload.orders import STATUSES, WRONG_OFFSET, Order, new_order, read_model_write
from testbed.workload.projector import Projector
from testbed.workload.schema import (
    DEFAULT_KEYSPACE,
    READ_MODEL_TABLES,
    check_keyspace,
    schema_statements,
)
from testbed.workload.session import WorkloadSession
from testbed.workload.stats import WorkloadStats

log = logging.getLogger(__name__)


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
        self.stats = WorkloadStats()
        self._rng = random.Random(seed)
        # Fates draw from their own generator: with a seed, N syncs fail the same way however
        # the commands interleave.
        self._fault_rng = random.Random(None if seed is None else seed + 1)
        self._customers = [uuid.UUID(int=self._rng.getrandbits(128), version=4)
                           for _ in range(customers)]
        self._recent: deque[Order] = deque(maxlen=1000)
        self._session = WorkloadSession(self.contact_points, write_datacenter, self.keyspace,
                                        port)
        self._projector = Projector(
            self._session, self.stats, self.apply,
            lambda: self.knobs.delay.sample(self._rng),
            poll=projector_poll, settle=projector_settle, batch=projector_batch,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pending_syncs: set[asyncio.Task[None]] = set()
        self._running = False

    # --- connection ---------------------------------------------------------------

    async def connect(self) -> None:
        await self._session.connect()

    async def execute(self, query: str | Statement, params: Any = None,
                      *, timeout: float = 10.0) -> list[Any]:
        """Run one statement through the workload's session (LOCAL_QUORUM, write DC)."""
        return await self._session.execute(query, params, timeout=timeout)

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
        await self._session.close()

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

    async def create_order(self) -> Order:
        order = replace(new_order(self._rng, self._customers), written_at=time.time())
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
        write = await self._session.bound(*source)
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
            writes.append((table, await self._session.bound(*read_model_write(
                table, order, total, created))))
        return writes

    # --- event store and projector ----------------------------------------------------

    async def append_event(self, order: Order, *, created: bool,
                           event_id: uuid.UUID | None = None) -> uuid.UUID:
        """Append the order's event to the event store and to the day's feed."""
        return await self._projector.append_event(order, created=created, event_id=event_id)

    @property
    def projector_running(self) -> bool:
        return self._projector.running

    def start_projector(self) -> None:
        self._projector.start()

    async def stop_projector(self) -> None:
        """Stop the projector after the batch it is on; its checkpoint stays where it is."""
        await self._projector.stop()

    async def checkpoint(self) -> uuid.UUID | None:
        return await self._projector.checkpoint()

    async def project_once(self, position: uuid.UUID | None) -> uuid.UUID | None:
        """Project every settled event after `position`; return the new position."""
        return await self._projector.project_once(position)

    async def projector_caught_up(self) -> bool:
        """Whether the checkpoint has reached the newest event appended by this workload."""
        return await self._projector.caught_up()
