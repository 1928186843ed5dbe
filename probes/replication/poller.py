"""A background reader that polls on a fixed cadence while there is something to look for.

A read starts every `period` seconds, measured from the previous start, with at most
`limit` reads in flight. The probes use a limit of one: a request a stalled node has not
answered cannot be withdrawn, so every further one would queue behind it and slow the
node's recovery (on a small host, ~60 reads queued in a 3 s pause delayed the first answer
after the resume by 0.3-0.7 s; with one, by ~0.03 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from exporter.clock import Clock

# A stable name for log filters, whatever the module's path.
log = logging.getLogger(__name__)

Due = Callable[[], float | None]
"""Seconds until a read is due (zero or less: now), or None: wait until woken."""

K = TypeVar("K")


class CadencedPoller:
    def __init__(
        self,
        name: str,
        read: Callable[[], Awaitable[None]],
        due: Due,
        *,
        period: float,
        limit: int,
        clock: Clock,
    ) -> None:
        self.name = name
        self._read = read
        self._due = due
        self._period = period
        self._slots = asyncio.Semaphore(max(1, limit))
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name=f"poller:{self.name}")

    def wake(self) -> None:
        """Look again now: there may be something new to read."""
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._reads) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._reads.clear()

    async def _wait(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _loop(self) -> None:
        while True:
            delay = self._due()
            if delay is None or delay > 0:
                await self._wait(delay)
                continue
            await self._slots.acquire()
            started = self._clock.monotonic()
            task = asyncio.create_task(self._guarded_read(), name=f"read:{self.name}")
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)
            # The next read is due one period after this one started, not after it ended.
            await asyncio.sleep(max(0.0, started + self._period - self._clock.monotonic()))

    async def _guarded_read(self) -> None:
        try:
            await self._read()
        except asyncio.CancelledError:
            raise
        except Exception:  # the read reports its own failures; this is a bug guard
            log.exception("poller %s: read raised", self.name)
        finally:
            self._slots.release()


async def stop_others(pollers: dict[K, CadencedPoller], keep: Collection[K]) -> set[K]:
    """Stop and remove the pollers whose key is not in `keep` (readers that are gone)."""
    gone = {key for key in pollers if key not in keep}
    for key in gone:
        await pollers.pop(key).stop()
    return gone
