"""Driver futures onto the event loop: settled from the driver's IO thread, with a timer.

`bridge` wakes the loop with each answer (`call_soon_threadsafe`). `quiet_bridge`, for the
requests the latency probes only time, notes the answer and the time it arrived in a deque
instead and leaves it for the loop's next `drain`, saving a loop wake-up and a self-pipe
write per request. Both give a request one future and one timer: `asyncio.wait_for` would
add a second future, a callback and a task switch to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cassandra.cluster import ResponseFuture


def bridge(future: ResponseFuture, limit: float) -> asyncio.Future[list[Any]]:
    """Turn a driver ResponseFuture into an asyncio future that fails with `TimeoutError`
    after `limit` seconds; the driver's callbacks run on its IO thread.

    One future and one timer per request: `asyncio.wait_for` would add a second future, a
    callback and a task switch to every request the latency probes time.
    """
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()

    def expire() -> None:
        if not result.done():
            result.set_exception(TimeoutError())

    timer = loop.call_later(limit, expire)

    def settle(rows: Any = None, error: BaseException | None = None) -> None:
        timer.cancel()
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(list(rows) if rows else [])

    def on_success(rows: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(settle, rows, None)

    def on_error(exc: BaseException) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, None, exc)

    future.add_callbacks(on_success, on_error)
    return result


Answer = tuple[Callable[[float, BaseException | None], None], float, BaseException | None]
"""How to settle a timed request, when it was answered, and its error if it failed."""


def drain(answers: deque[Answer]) -> None:
    while answers:
        try:
            settle, answered_at, error = answers.popleft()
        except IndexError:  # pragma: no cover - only the loop pops
            return
        settle(answered_at, error)


def quiet_bridge(
    future: ResponseFuture, limit: float, answers: deque[Answer]
) -> asyncio.Future[float]:
    """Like `bridge`, but the IO thread only notes the answer and its time in `answers`
    (a deque: appending is thread-safe) instead of waking the loop; `drain` settles it."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[float] = loop.create_future()

    def expire() -> None:
        drain(answers)
        if not result.done():
            result.set_exception(TimeoutError())

    timer = loop.call_later(limit, expire)

    def settle(answered_at: float, error: BaseException | None) -> None:
        timer.cancel()
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(answered_at)

    def on_success(_: Any) -> None:
        answers.append((settle, time.monotonic(), None))

    def on_error(exc: BaseException) -> None:
        answers.append((settle, time.monotonic(), exc))

    future.add_callbacks(on_success, on_error)
    return result
