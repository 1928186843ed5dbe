"""The event-loop lag monitor: real lag measured, overlaps found, the histogram exported."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from exporter.event_loop import EventLoopMonitor
from tests.support import poll_until


async def test_a_blocked_loop_is_measured_as_lag() -> None:
    monitor = EventLoopMonitor(tick=0.01)
    monitor.start()
    try:
        await poll_until(lambda: monitor.window.count() >= 3, timeout=30, interval=0.01)
        time.sleep(0.08)  # block the loop on purpose
        await poll_until(
            lambda: (monitor.snapshot().max or 0.0) >= 0.06,
            timeout=10,
            interval=0.01,
            message="the 80 ms block measured",
        )
        now = time.monotonic()
        assert monitor.lag_during(now - 5, now) >= 0.06
    finally:
        await monitor.stop()
    assert not monitor.running


async def test_current_lag_counts_a_block_still_in_progress() -> None:
    monitor = EventLoopMonitor(tick=0.01)
    monitor.start()
    try:
        await poll_until(lambda: monitor.window.count() >= 2, timeout=30, interval=0.01)
        time.sleep(0.05)
        # The tick has not run yet, but the lag is already visible.
        assert monitor.current_lag() >= 0.035
        assert monitor.lag_during(time.monotonic() - 0.01, time.monotonic()) >= 0.035
    finally:
        await monitor.stop()


def test_lag_during_finds_only_overlapping_lags() -> None:
    monitor = EventLoopMonitor(tick=0.05, clock=lambda: 1000.0)
    monitor.record(0.020, woke_at=100.0)  # blocked over [99.98, 100.0]
    monitor.record(0.0002, woke_at=100.5)  # too small to remember
    monitor.record(0.300, woke_at=200.0)  # blocked over [199.7, 200.0]
    assert monitor.lag_during(99.0, 99.9) == 0.0
    assert monitor.lag_during(99.99, 99.995) == pytest.approx(0.020)
    assert monitor.lag_during(150.0, 199.8) == pytest.approx(0.300)
    assert monitor.lag_during(99.0, 250.0) == pytest.approx(0.300)
    assert monitor.lag_during(200.1, 300.0) == 0.0


def test_lag_is_exported_as_a_histogram_in_seconds() -> None:
    monitor = EventLoopMonitor(tick=0.05, clock=lambda: 0.0)
    for lag in (0.0001, 0.002, 0.02):
        monitor.record(lag, woke_at=0.0)

    class Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            return monitor.collect()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())  # type: ignore[arg-type]
    assert registry.get_sample_value("cqrs_event_loop_lag_seconds_count") == 3
    assert registry.get_sample_value("cqrs_event_loop_lag_seconds_bucket", {"le": "0.01"}) == 2
    assert registry.get_sample_value("cqrs_event_loop_lag_seconds_sum") == pytest.approx(0.0221)


async def test_stop_without_start_is_harmless() -> None:
    monitor = EventLoopMonitor()
    await monitor.stop()
    assert monitor.current_lag() == 0.0
    await asyncio.sleep(0)


async def test_start_up_objects_are_frozen_out_of_the_collector_once_start_up_is_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    import exporter.event_loop as event_loop

    monkeypatch.setattr(event_loop, "FREEZE_POLL", 0.01)
    started = {"done": False}
    gc.unfreeze()
    try:
        freezing = asyncio.create_task(event_loop.freeze_when(lambda: started["done"]))
        await asyncio.sleep(0.1)
        assert not freezing.done() and gc.get_freeze_count() == 0, "frozen before start-up ended"
        started["done"] = True
        frozen = await asyncio.wait_for(freezing, timeout=10)
        assert frozen > 1000 and gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()


async def test_start_up_that_never_ends_is_frozen_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    import exporter.event_loop as event_loop

    monkeypatch.setattr(event_loop, "FREEZE_POLL", 0.01)
    gc.unfreeze()
    try:
        assert await asyncio.wait_for(event_loop.freeze_when(lambda: False, 0.05), 10) > 1000
    finally:
        gc.unfreeze()
