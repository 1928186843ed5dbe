"""The event store and the projector that reads its feed in order into the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from cassandra.util import max_uuid_from_time, min_uuid_from_time

from testbed.workload.orders import Order
from testbed.workload.schema import PROJECTOR
from testbed.workload.session import WorkloadSession
from testbed.workload.stats import WorkloadStats

log = logging.getLogger(__name__)


class Apply(Protocol):
    """Writes one version of an order into the read models."""

    def __call__(self, order: Order, *, created: bool) -> Awaitable[None]: ...


class Projector:
    """Appends events to `events` and the day's `event_feed`; projects them from a checkpoint.

    `apply` writes a projected order into the read models; `wait` gives, for each pass,
    how old an event must be before it is taken.

    A write can be acknowledged well after the TIMEUUID it carries (a slow or retried
    request: a command's, or an exporter's sentinel), after the checkpoint has passed that
    time. Once every `sweep_every` seconds the projector reads the feed again from
    `lookback` seconds before its checkpoint and projects what it finds there for the first
    time, so that such an event is projected late rather than lost.
    """

    def __init__(self, session: WorkloadSession, stats: WorkloadStats, apply: Apply,
                 wait: Callable[[], float], *, poll: float = 0.05, settle: float = 0.2,
                 batch: int = 200, lookback: float = 10.0, sweep_every: float = 1.0) -> None:
        self.session = session
        self.stats = stats
        self.apply = apply
        self.wait = wait
        self.poll = poll
        self.settle = settle
        """Events younger than this are left for the next pass: writes still in flight may
        carry an older TIMEUUID than an event already visible."""
        self.batch = batch
        self.lookback = lookback
        self.sweep_every = sweep_every
        self._projected: dict[uuid.UUID, float] = {}
        """Events projected within the last `lookback` (and a little) before the checkpoint,
        with their TIMEUUID's time: a sweep skips them."""
        self._swept_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    async def append_event(self, order: Order, *, created: bool,
                           event_id: uuid.UUID | None = None) -> uuid.UUID:
        """Append the order's event to the event store and to the day's feed (under
        `event_id` when given: a TIMEUUID taken earlier, as a slow writer's would be)."""
        event_id = event_id or uuid.uuid1()
        event_type = "OrderCreated" if created else "OrderStatusChanged"
        day = datetime.fromtimestamp(uuid_seconds(event_id), UTC).date()
        await asyncio.gather(
            self.session.run(
                "INSERT INTO {ks}.events (aggregate_id, event_id, event_type, event_data) "
                "VALUES (?, ?, ?, ?)",
                (order.order_id, event_id, event_type, order.payload()),
            ),
            self.session.run(
                "INSERT INTO {ks}.event_feed (day, event_id, aggregate_id, event_type) "
                "VALUES (?, ?, ?, ?)",
                (day, event_id, order.order_id, event_type),
            ),
        )
        self.stats.events_appended += 1
        return event_id

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(self._stop), name="workload-projector")

    async def stop(self) -> None:
        """Stop after the batch it is on; the checkpoint stays where it is."""
        task, stop = self._task, self._stop
        self._task = None
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
        rows = await self.session.run(
            "SELECT position FROM {ks}.projection_checkpoints WHERE projector = ?", (PROJECTOR,)
        )
        return rows[0].position if rows else None

    async def _loop(self, stop: asyncio.Event) -> None:
        position: uuid.UUID | None = None
        while not stop.is_set():
            try:
                if position is None:
                    position = await self.checkpoint()
                position = await self.project_once(position)
                if position is not None and time.monotonic() - self._swept_at >= self.sweep_every:
                    self._swept_at = time.monotonic()
                    await self.sweep(position)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.sync_errors += 1
                log.debug("projector pass failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll)

    async def project_once(self, position: uuid.UUID | None) -> uuid.UUID | None:
        """Project every settled event after `position`; return the new position."""
        wait = max(self.settle, self.wait())
        upper_time = time.time() - wait
        upper = max_uuid_from_time(upper_time)
        if position is None:
            # A projector without a checkpoint starts at the beginning of today's feed.
            first_day = datetime.fromtimestamp(upper_time, UTC).date()
            after: uuid.UUID | None = None
        else:
            first_day = datetime.fromtimestamp(uuid_seconds(position), UTC).date()
            after = position
        last_day = datetime.fromtimestamp(upper_time, UTC).date()
        day: date = first_day
        while day <= last_day:
            while True:
                if after is None:
                    rows = await self.session.run(
                        "SELECT event_id, aggregate_id FROM {ks}.event_feed WHERE day = ? "
                        "AND event_id <= ? LIMIT ?",
                        (day, upper, self.batch),
                    )
                else:
                    rows = await self.session.run(
                        "SELECT event_id, aggregate_id FROM {ks}.event_feed WHERE day = ? "
                        "AND event_id > ? AND event_id <= ? LIMIT ?",
                        (day, after, upper, self.batch),
                    )
                if not rows:
                    break
                done = await self._project_batch(rows)
                if done is None:
                    return position  # an event is not readable yet; retry from here
                position = after = done
                await self.session.run(
                    "UPDATE {ks}.projection_checkpoints SET position = ?, updated_at = ? "
                    "WHERE projector = ?",
                    (position, datetime.now(UTC), PROJECTOR),
                )
                if len(rows) < self.batch:
                    break
            day += timedelta(days=1)
        return position

    async def _project_batch(self, rows: list[Any]) -> uuid.UUID | None:
        """Apply a batch of feed entries in order per aggregate; the last event id, or None."""
        events = await asyncio.gather(*(
            self.session.run(
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
        for row in rows:
            self._projected[row.event_id] = uuid_seconds(row.event_id)
        last: uuid.UUID = rows[-1].event_id
        return last

    async def sweep(self, position: uuid.UUID) -> int:
        """Project the events from `lookback` seconds before `position` up to it that were
        not projected yet (acknowledged after the checkpoint passed their time); how many."""
        until = uuid_seconds(position)
        since = until - self.lookback
        self._projected = {
            event: at for event, at in self._projected.items() if at >= since - self.sweep_every
        }
        late: list[Any] = []
        for day in sorted({datetime.fromtimestamp(t, UTC).date() for t in (since, until)}):
            rows = await self.session.run(
                "SELECT event_id, aggregate_id FROM {ks}.event_feed WHERE day = ? "
                "AND event_id >= ? AND event_id <= ?",
                (day, min_uuid_from_time(since), position),
            )
            late += [row for row in rows if row.event_id not in self._projected]
        if late and await self._project_batch(late) is not None:
            self.stats.events_projected_late += len(late)
            log.debug("projected %d event(s) acknowledged after the checkpoint passed them",
                      len(late))
            return len(late)
        return 0

    async def caught_up(self) -> bool:
        """Whether the checkpoint has reached the newest event appended by this workload."""
        position = await self.checkpoint()
        newest = await self.session.run(
            "SELECT event_id FROM {ks}.event_feed WHERE day = ? ORDER BY event_id DESC LIMIT 1",
            (datetime.now(UTC).date(),),
        )
        if not newest:
            return True
        return position is not None and uuid_seconds(position) >= uuid_seconds(
            newest[0].event_id
        )


def uuid_seconds(value: uuid.UUID) -> float:
    """Unix seconds of a version-1 (time) UUID."""
    return (value.time - 0x01B21DD213814000) / 1e7
