"""Driver futures onto the event loop: answers from the IO thread, errors, the safety timer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from exporter.bridge import bridge as _bridge


class DriverFuture:
    """The part of cassandra-driver's ResponseFuture the bridge uses."""

    def __init__(self) -> None:
        self.callbacks: tuple[Callable[[Any], None], Callable[[BaseException], None]] | None = None

    def add_callbacks(
        self, callback: Callable[[Any], None], errback: Callable[[BaseException], None]
    ) -> None:
        self.callbacks = (callback, errback)

    def answer_from_another_thread(
        self, rows: Any = None, error: BaseException | None = None
    ) -> None:
        assert self.callbacks is not None
        callback, errback = self.callbacks
        thread = threading.Thread(target=errback if error else callback, args=(error or rows,))
        thread.start()
        thread.join()


async def test_rows_from_the_io_thread_settle_the_future() -> None:
    driver = DriverFuture()
    result = _bridge(driver, 5.0)  # type: ignore[arg-type]
    driver.answer_from_another_thread([(1,), (2,)])
    assert await result == [(1,), (2,)]


async def test_an_error_from_the_io_thread_is_raised() -> None:
    driver = DriverFuture()
    result = _bridge(driver, 5.0)  # type: ignore[arg-type]
    driver.answer_from_another_thread(error=ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        await result


async def test_no_answer_fails_with_a_timeout_after_the_limit_and_a_late_one_is_ignored() -> None:
    driver = DriverFuture()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await _bridge(driver, 0.05)  # type: ignore[arg-type]
    assert loop.time() - started >= 0.04
    driver.answer_from_another_thread([(1,)])  # too late: nothing raises
    await asyncio.sleep(0.01)


async def test_an_answer_cancels_the_timer() -> None:
    driver = DriverFuture()
    loop = asyncio.get_running_loop()
    result = _bridge(driver, 30.0)  # type: ignore[arg-type]
    timers = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    driver.answer_from_another_thread([])
    assert await result == []
    assert all(h.cancelled() for h in timers if h.when() > loop.time() + 20)
