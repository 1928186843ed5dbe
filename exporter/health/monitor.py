"""The health evaluation loop: the evaluator's step on a fixed cadence, in the background.

HTTP handlers and metrics only read the latest snapshot it leaves, so they never wait on
Cassandra, and a slow or failing evaluation never holds a request. Each evaluation also
leaves its components' samples in a bounded history, which the status page draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from exporter.health.evaluation import HealthEvaluator
from exporter.health.history import HealthHistory
from exporter.health.readings import ProbeReading
from exporter.health.snapshot import HealthSnapshot

log = logging.getLogger("exporter.health")


class HealthMonitor:
    """Runs the evaluator on a fixed cadence in the background; never touches Cassandra."""

    def __init__(
        self,
        evaluator: HealthEvaluator,
        read: Callable[[], Iterable[ProbeReading]],
        interval: float,
        listeners: Iterable[Callable[[HealthSnapshot], None]] = (),
    ) -> None:
        self.evaluator = evaluator
        self.listeners = tuple(listeners)
        """Called with each new snapshot (the SLI counters); they do no I/O."""
        self._read = read
        self.interval = interval
        self.history = HealthHistory()
        self._task: asyncio.Task[None] | None = None
        self._last_tick: float | None = None

    @property
    def snapshot(self) -> HealthSnapshot:
        return self.evaluator.snapshot

    def evaluate_now(self) -> HealthSnapshot:
        snapshot = self.evaluator.evaluate(self._read())
        self._last_tick = self.evaluator.clock.monotonic()
        self.history.record(
            (item for items in snapshot.overall.components.values() for item in items),
            self._last_tick,
        )
        for listener in self.listeners:
            try:
                listener(snapshot)
            except Exception:  # a listener's bug must not stop the evaluations
                log.exception("a health listener failed")
        return snapshot

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="health-evaluation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def alive(self) -> bool:
        """The evaluation task runs and has evaluated recently."""
        if self._task is None or self._task.done() or self._last_tick is None:
            return False
        quiet_for = self.evaluator.clock.monotonic() - self._last_tick
        return quiet_for <= max(10 * self.interval, 30.0)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                self.evaluate_now()
            except Exception:  # an evaluation bug must not stop later evaluations
                log.exception("health evaluation failed")
            # A fixed cadence; ticks missed while the loop was busy are dropped, not replayed.
            next_at += self.interval
            now = loop.time()
            if next_at < now:
                next_at = now + self.interval
            await asyncio.sleep(next_at - now)
