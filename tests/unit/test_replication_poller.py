"""The cadenced poller: a steady cadence past stuck reads, a bound on them, idle when not due."""

from __future__ import annotations

import asyncio
import time

from exporter.clock import SystemClock
from probes.replication.poller import CadencedPoller
from tests.support import poll_until


class Reads:
    def __init__(self, hold: float | None) -> None:
        self.hold = hold
        self.starts: list[float] = []
        self.finished = 0
        self.cancelled = 0

    async def __call__(self) -> None:
        self.starts.append(time.monotonic())
        try:
            if self.hold is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(self.hold)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1


def poller(reads: Reads, due: object, period: float = 0.05, limit: int = 20) -> CadencedPoller:
    return CadencedPoller(
        "test", reads, due, period=period, limit=limit, clock=SystemClock()  # type: ignore[arg-type]
    )


async def test_reads_keep_their_cadence_while_earlier_ones_are_stuck() -> None:
    reads = Reads(hold=0.4)  # each read takes eight periods
    p = poller(reads, lambda: 0.0)
    p.start()
    try:
        await poll_until(lambda: len(reads.starts) >= 8, timeout=5.0, message="eight reads")
    finally:
        await p.stop()
    gaps = [b - a for a, b in zip(reads.starts, reads.starts[1:], strict=False)]
    assert len(reads.starts) >= 8
    # Started one period apart, not one read duration apart (generous margin for a busy host).
    assert sorted(gaps)[len(gaps) // 2] < 0.2


async def test_reads_in_flight_are_bounded_and_stop_cancels_them() -> None:
    reads = Reads(hold=None)  # never return
    p = poller(reads, lambda: 0.0, period=0.01, limit=3)
    p.start()
    await poll_until(lambda: len(reads.starts) == 3, timeout=5.0, message="three reads")
    await asyncio.sleep(0.2)
    assert len(reads.starts) == 3
    await p.stop()
    assert reads.cancelled == 3 and not p.running


async def test_nothing_is_read_until_something_is_due_and_a_wake_looks_at_once() -> None:
    reads = Reads(hold=0.0)
    wanted = {"now": False}
    p = poller(reads, lambda: 0.0 if wanted["now"] else None)
    p.start()
    try:
        await asyncio.sleep(0.3)
        assert reads.starts == []
        wanted["now"] = True
        woken = time.monotonic()
        p.wake()
        await poll_until(lambda: reads.starts, timeout=5.0, message="a read after the wake")
        assert reads.starts[0] - woken < 1.0
        wanted["now"] = False
        await asyncio.sleep(0.2)
        settled = len(reads.starts)
        await asyncio.sleep(0.3)
        assert len(reads.starts) == settled
    finally:
        await p.stop()


async def test_a_delay_until_due_is_honoured_without_a_wake() -> None:
    reads = Reads(hold=0.0)
    due_at = time.monotonic() + 0.3
    p = poller(reads, lambda: due_at - time.monotonic() if not reads.starts else None)
    p.start()
    try:
        await poll_until(lambda: reads.starts, timeout=5.0, message="the delayed read")
    finally:
        await p.stop()
    assert reads.starts[0] >= due_at - 0.01
