"""Fixed-rate timing without coordinated omission, with a fake request (pure timing logic).

The real requests are proven against the testbed in test_latency_probe.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from cassandra import OperationTimedOut

from exporter.event_loop import LagLog
from exporter.quantiles import exact_quantile, latency_buckets
from exporter.results import FailureReason
from probes.latency.series import LatencySeries, Operation, SeriesKey
from probes.latency.timing import FixedRateLoop, max_in_flight
from tests.support import poll_until


class FakeRequest:
    """Answers after `latency`; like the driver, gives up at the timeout unless told not to."""

    def __init__(
        self, latency: float = 0.001, *, honour_timeout: bool = True, connected: bool = True
    ) -> None:
        self.latency = latency
        self.honour_timeout = honour_timeout
        self.connected = connected
        self.prepare_error: Exception | None = None
        self.sent = 0

    def why_not_connected(self) -> tuple[FailureReason, str]:
        return FailureReason.UNAVAILABLE, "no Cassandra session yet"

    async def prepare(self) -> None:
        if self.prepare_error is not None:
            raise self.prepare_error

    async def send(self, timeout: float) -> None:
        self.sent += 1
        if self.honour_timeout and self.latency > timeout:
            await asyncio.sleep(timeout)
            raise OperationTimedOut("fake timeout")
        await asyncio.sleep(self.latency)


class Recorded:
    """Every value the series records, beside the series itself (the exact reference)."""

    def __init__(self, series: LatencySeries) -> None:
        self.values: list[float] = []
        original = series.window.record

        def record(seconds: float, count: int = 1, *, now: float | None = None) -> None:
            self.values.extend([seconds] * count)
            original(seconds, count, now=now)

        series.window.record = record  # type: ignore[method-assign]


def make_series(timeout: float) -> LatencySeries:
    return LatencySeries.create(
        SeriesKey(Operation.QUERY, "eu-west", "LOCAL_ONE"),
        timeout=timeout,
        window=300,
        slices=5,
        bounds=latency_buckets((0.05, 0.1), highest=timeout),
        clock=time.monotonic,
    )


@asynccontextmanager
async def driving(
    request: FakeRequest, *, rate: float, timeout: float, lag_flag: float = 0.01
) -> AsyncIterator[tuple[FixedRateLoop, Recorded]]:
    series = make_series(timeout)
    recorded = Recorded(series)
    loop = FixedRateLoop(
        request,
        series,
        rate=rate,
        timeout=timeout,
        lags=LagLog(),
        lag_flag=lag_flag,
        clock=time.monotonic,
    )
    task = asyncio.create_task(loop.run())
    try:
        yield loop, recorded
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_requests_go_out_at_the_configured_rate() -> None:
    request = FakeRequest(0.002)
    async with driving(request, rate=50, timeout=0.5) as (loop, recorded):
        await poll_until(lambda: loop.not_ready is None, timeout=30, interval=0.01)
        started = time.monotonic()
        first = loop.slots
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - started
        slots = loop.slots - first
    # Slots fall due by the clock, not by how promptly the loop wakes: the count holds on a
    # loaded machine too (the margin covers the loop being late at either reading).
    assert 0.9 * 50 * elapsed - 3 <= slots <= 1.1 * 50 * elapsed + 3
    assert request.sent >= loop.slots - loop.in_flight - 3
    assert loop.series.failures == dict.fromkeys(FailureReason, 0)
    assert loop.series.missed == 0
    assert all(0.0015 < v < 0.5 for v in recorded.values)


async def test_a_stalled_datacenter_fills_the_window_with_timeouts_not_gaps() -> None:
    request = FakeRequest(latency=30.0)  # never answers within the timeout
    async with driving(request, rate=40, timeout=0.2) as (loop, recorded):
        await poll_until(lambda: loop.not_ready is None, timeout=30, interval=0.01)
        started = time.monotonic()
        await asyncio.sleep(1.2)
        elapsed = time.monotonic() - started
    series = loop.series
    timeouts = series.failures[FailureReason.TIMEOUT]
    # Every slot that was due at least a timeout before the end has been recorded.
    assert timeouts + series.missed >= 40 * (elapsed - 0.2) - 3
    assert set(recorded.values) == {0.2}
    snapshot = series.refresh()
    assert snapshot.p99 == pytest.approx(0.2, rel=0.002)
    assert series.buckets.buckets()[-2] == ("0.2", series.buckets.count)  # le=timeout holds all
    assert series.last_failure is not None
    assert series.last_failure.reason is FailureReason.TIMEOUT


async def test_requests_stuck_past_their_timeout_are_bounded_and_their_slots_counted() -> None:
    request = FakeRequest(latency=30.0, honour_timeout=False)
    async with driving(request, rate=50, timeout=0.1) as (loop, recorded):
        await poll_until(lambda: loop.not_ready is None, timeout=30, interval=0.01)
        started = time.monotonic()
        peak = 0
        while time.monotonic() - started < 1.0:
            peak = max(peak, loop.in_flight)
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
    limit = max_in_flight(50, 0.1)
    assert peak <= limit
    assert request.sent <= limit
    # The slots that found no free place still enter the window, at the timeout.
    assert loop.series.missed >= 50 * elapsed - limit - 5
    assert len(recorded.values) >= 50 * elapsed - limit - 5
    assert set(recorded.values) == {0.1}


async def test_a_late_event_loop_shows_in_the_latencies_and_is_flagged() -> None:
    request = FakeRequest(0.001)
    async with driving(request, rate=100, timeout=1.0) as (loop, recorded):
        await poll_until(lambda: len(recorded.values) >= 20, timeout=30, interval=0.01)
        before = len(recorded.values)
        time.sleep(0.3)  # the loop is blocked: slots fall due but nothing is sent
        await poll_until(
            lambda: len(recorded.values) >= before + 40, timeout=30, interval=0.01
        )
    during = recorded.values[before:]
    # A naive timer would see ~1 ms for every request. Timing from the intended start, the
    # slots that fell due during the block carry up to the block's length.
    assert max(during) >= 0.25
    assert exact_quantile(recorded.values, 0.99) >= 0.1
    series = loop.series
    series.refresh()
    assert series.lagged_in_window >= 20


async def test_nothing_is_sent_or_counted_without_a_session() -> None:
    request = FakeRequest(connected=False)
    async with driving(request, rate=100, timeout=0.2) as (loop, recorded):
        await poll_until(lambda: loop.not_ready is not None, timeout=30, interval=0.01)
        await asyncio.sleep(0.3)
        assert loop.not_ready == (FailureReason.UNAVAILABLE, "no Cassandra session yet")
    assert request.sent == 0
    assert recorded.values == []
    assert loop.series.missed == 0


async def test_a_request_that_cannot_be_prepared_says_why() -> None:
    request = FakeRequest()
    request.prepare_error = OperationTimedOut("prepare timed out")
    async with driving(request, rate=100, timeout=0.2) as (loop, recorded):
        await poll_until(
            lambda: loop.not_ready is not None and loop.not_ready[0] is FailureReason.TIMEOUT,
            timeout=30,
            interval=0.01,
        )
        request.prepare_error = None
        await poll_until(lambda: loop.not_ready is None, timeout=30, interval=0.05)
        await poll_until(lambda: request.sent > 0, timeout=30, interval=0.01)
    assert recorded.values


def test_failures_before_a_streams_first_success_are_counted_not_sampled_while_starting() -> None:
    now = [100.0]
    series = LatencySeries.create(
        SeriesKey(Operation.QUERY, "eu-west", "LOCAL_ONE"),
        timeout=1.0,
        window=60.0,
        slices=6,
        bounds=[0.01, 0.1, 1.0],
        clock=lambda: now[0],
        warm_until=130.0,
    )
    series.record_failure(FailureReason.UNAVAILABLE, "pool opening")
    series.record_missed(2)
    assert series.failures[FailureReason.UNAVAILABLE] == 1 and series.missed == 2
    assert series.buckets.count == 0 and series.refresh().count == 0
    series.record_success(0.004)
    series.record_failure(FailureReason.TIMEOUT, "no answer")  # after a success: a sample
    assert series.buckets.count == 2 and series.refresh().count == 2


def test_a_stream_that_never_worked_samples_its_failures_once_the_grace_is_over() -> None:
    now = [100.0]
    series = LatencySeries.create(
        SeriesKey(Operation.QUERY, "eu-west", "LOCAL_ONE"),
        timeout=1.0,
        window=60.0,
        slices=6,
        bounds=[0.01, 0.1, 1.0],
        clock=lambda: now[0],
        warm_until=130.0,
    )
    series.record_failure(FailureReason.UNAVAILABLE, "no host")
    now[0] = 131.0  # a datacenter down since before the start is an outage, not warm-up
    series.record_failure(FailureReason.UNAVAILABLE, "no host")
    assert series.buckets.count == 1
    assert series.refresh().p99 == pytest.approx(1.0, rel=0.01)
