"""How late the exporter's own event loop runs.

A task that sleeps measures how much later than asked it woke up. Everything the loop
does (scrapes, probe bookkeeping, driver callbacks) delays that wake-up, and so does the
operating system not giving the process a CPU, and another thread of the process holding the
interpreter lock (`short_gil_waits` bounds that wait), and the cyclic garbage collector, which
runs on whichever thread allocates and holds the lock throughout (`freeze_when`, for a served
process, keeps start-up's objects out of its full collections). `EventLoopMonitor` ticks on
its own and exports the lag; `LagLog` remembers recent lags so that a probe can tell whether a
timing overlapped one (the latency probe feeds it from its own fixed-rate wake-ups, which
come often enough, so it needs no ticker of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric

from exporter.metric_catalogue import EVENT_LOOP_LAG
from exporter.quantiles import BucketHistogram, QuantileSnapshot, SlidingHistogram

DEFAULT_TICK = 0.05
LAG_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)
NOTABLE_LAG = 0.001
"""Lags at least this long are remembered for `lag_during`."""
HISTORY_SECONDS = 120.0
HISTORY_LENGTH = 4096
MAX_LAG = 60.0
"""Longer lags are recorded as this."""
GIL_SWITCH_INTERVAL = 0.0005
"""How long the loop waits at most for the interpreter lock while another thread (the render
thread formatting /metrics, the driver's IO thread) holds it; CPython's default is 5 ms."""

FREEZE_POLL = 1.0
"""How often `freeze_when` asks whether start-up is done."""

log = logging.getLogger(__name__)


async def freeze_when(done: Callable[[], bool], give_up_after: float = 300.0) -> int:
    """Once `done()` holds (every probe has run once), move every object alive into the
    collector's permanent generation (`gc.freeze`) and return how many there were.

    Start-up leaves some 80,000 long-lived objects (modules, the driver's metadata, the
    config, the metric families). A full collection walks them all, on whichever thread
    allocates, holding the interpreter lock: 31 ms on the event loop on the testbed. Frozen,
    they are never walked, and a full collection costs what has been allocated since. Only
    for a served process: it applies to the whole interpreter. After `give_up_after` seconds
    without `done()`, it freezes anyway.
    """
    deadline = time.monotonic() + give_up_after
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(FREEZE_POLL)
    gc.collect()  # what start-up dropped is freed rather than kept forever
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects out of the cyclic collector's walks", frozen)
    return frozen


@contextlib.contextmanager
def short_gil_waits(interval: float = GIL_SWITCH_INTERVAL) -> Iterator[None]:
    """Shorten the interpreter's switch interval while serving, then restore it.

    A thread that wants the lock asks the holder to drop it after the switch interval;
    with CPython's 5 ms, one formatting of /metrics in the render thread could hold a
    waking event loop for 5 ms. The cost is more lock hand-offs only while two threads
    both run Python code.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class LagLog:
    """Recent notable lags: the loop woke `lag` late at `woke_at`, so it was blocked (or not
    scheduled) over [woke_at - lag, woke_at]."""

    def __init__(self) -> None:
        self._late: deque[tuple[float, float]] = deque(maxlen=HISTORY_LENGTH)

    def note(self, lag: float, woke_at: float) -> None:
        if lag < NOTABLE_LAG:
            return
        self._late.append((woke_at, lag))
        while self._late and self._late[0][0] < woke_at - HISTORY_SECONDS:
            self._late.popleft()

    def lag_during(self, start: float, end: float) -> float:
        """The longest noted lag that overlapped [start, end] (0 when none did)."""
        worst = 0.0
        for woke_at, lag in reversed(self._late):
            if woke_at < start:
                break
            if woke_at - lag < end:
                worst = max(worst, lag)
        return worst


class EventLoopMonitor:
    """Measures event-loop lag on a fixed tick and exports it; start it in the running loop."""

    def __init__(
        self,
        tick: float = DEFAULT_TICK,
        *,
        window: float = 300.0,
        slices: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._clock = clock
        self.window = SlidingHistogram(window, slices, clock=clock, highest=MAX_LAG)
        self.buckets = BucketHistogram(LAG_BUCKETS)
        self.log = LagLog()
        self._expected_wake: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Begin ticking on the running loop (idempotent)."""
        if self.running:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="event-loop-monitor"
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._expected_wake = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._expected_wake = self._clock() + self.tick
            await asyncio.sleep(self.tick)
            woke = self._clock()
            self.record(max(0.0, woke - self._expected_wake), woke)

    def record(self, lag: float, woke_at: float) -> None:
        """One measured lag (public so that tests and benchmarks can feed known values)."""
        self.window.record(lag, now=woke_at)
        self.buckets.observe(min(lag, MAX_LAG))
        self.log.note(lag, woke_at)

    def current_lag(self, now: float | None = None) -> float:
        """How far past its expected wake-up the tick is right now (0 when on time)."""
        if self._expected_wake is None:
            return 0.0
        now = self._clock() if now is None else now
        return max(0.0, now - self._expected_wake)

    def lag_during(self, start: float, end: float) -> float:
        """The longest lag that overlapped [start, end], counting one still in progress."""
        in_progress = self.current_lag(end) if end >= self._clock() - self.tick else 0.0
        return max(in_progress, self.log.lag_during(start, end))

    def snapshot(self) -> QuantileSnapshot:
        return self.window.snapshot()

    def collect(self) -> Iterable[Metric]:
        """The lag histogram; the monitor is the event loop's collector on the registry."""
        family = EVENT_LOOP_LAG.family(
            f"How much later than asked the exporter's event loop woke from a "
            f"{self.tick:g} s sleep. A late loop inflates the latencies it times."
        )
        family.add_metric([], self.buckets.buckets(), self.buckets.sum)
        yield family
