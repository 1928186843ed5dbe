"""Timed answers that do not wake the loop: noted on the IO thread, settled at a drain."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from exporter.bridge import Answer, drain, quiet_bridge
from exporter.event_loop import LagLog
from probes.latency.timing import FixedRateLoop
from tests.unit.test_latency_timing import FakeRequest, Recorded, make_series


class DriverFuture:
    def __init__(self) -> None:
        self.callbacks: tuple[Callable[[Any], None], Callable[[BaseException], None]] | None = None

    def add_callbacks(
        self, callback: Callable[[Any], None], errback: Callable[[BaseException], None]
    ) -> None:
        self.callbacks = (callback, errback)

    def answer(self, error: BaseException | None = None) -> None:
        assert self.callbacks is not None
        target = self.callbacks[1] if error else self.callbacks[0]
        thread = threading.Thread(target=target, args=(error or [],))
        thread.start()
        thread.join()


async def test_an_answer_waits_for_the_drain_and_carries_its_arrival_time() -> None:
    answers: deque[Answer] = deque()
    driver = DriverFuture()
    result = quiet_bridge(driver, 5.0, answers)  # type: ignore[arg-type]
    before = time.monotonic()
    driver.answer()
    after = time.monotonic()
    await asyncio.sleep(0.02)
    assert not result.done()  # nothing woke the loop for it
    drain(answers)
    answered_at = await result
    assert before <= answered_at <= after
    assert not answers


async def test_an_error_is_raised_at_the_drain() -> None:
    answers: deque[Answer] = deque()
    driver = DriverFuture()
    result = quiet_bridge(driver, 5.0, answers)  # type: ignore[arg-type]
    driver.answer(ValueError("unavailable"))
    drain(answers)
    with pytest.raises(ValueError, match="unavailable"):
        await result


async def test_the_timer_drains_first_so_an_answer_in_time_is_not_a_timeout() -> None:
    answers: deque[Answer] = deque()
    answered, silent = DriverFuture(), DriverFuture()
    first = quiet_bridge(answered, 0.05, answers)  # type: ignore[arg-type]
    second = quiet_bridge(silent, 0.05, answers)  # type: ignore[arg-type]
    answered.answer()  # never drained by anyone but the timers
    assert isinstance(await first, float)
    with pytest.raises(TimeoutError):
        await second
    assert not answers


class AnsweredEarlier(FakeRequest):
    """Returns later than it was answered, as a drained answer does."""

    async def send(self, timeout: float) -> float:
        self.sent += 1
        await asyncio.sleep(self.latency)
        answered_at = time.monotonic()
        await asyncio.sleep(0.05)  # waiting for the drain
        return answered_at


async def test_the_loop_times_to_the_answer_and_drains_at_each_wake_up() -> None:
    request = AnsweredEarlier(0.002)
    series = make_series(1.0)
    recorded = Recorded(series)
    drains = 0

    def count_drain() -> None:
        nonlocal drains
        drains += 1

    loop = FixedRateLoop(
        request, series, rate=50, timeout=1.0, lags=LagLog(), lag_flag=0.5,
        clock=time.monotonic, drain=count_drain,
    )
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.sleep(0.6)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert drains >= 10
    assert len(recorded.values) >= 5
    # Timed to the answer (2 ms and the loop's lateness), not to the drain 50 ms later.
    assert sorted(recorded.values)[len(recorded.values) // 2] < 0.04, recorded.values
