"""Fixed-rate timing without coordinated omission.

Slot `i` has the intended start `t0 + i / rate`. Each request is timed from its intended
start, not from when it was sent, so a late event loop or a slow predecessor shows up in
the figures instead of silently thinning them (a wait for the request budget, the
exporter's own pacing, is taken off by `CassandraConnection.timed`). Requests run
concurrently: a request that overruns its slot does not hold back the next one. The number
in flight is bounded; a slot that finds every permitted request still running, or that can
no longer be answered within the timeout, is recorded as missed, at the timeout value.

Every wake-up also notes how late it is in a shared `LagLog`: the streams together sample
the event loop's lag often enough to flag timings that a late loop inflated.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Protocol

from exporter.connection import NotConnected, classify, describe
from exporter.event_loop import LagLog
from exporter.results import FailureReason
from probes.latency.series import LatencySeries

# A stable name for log filters, whatever the module's path.
log = logging.getLogger(__name__)

RETRY_PREPARE = 1.0
"""Seconds between attempts to get a request ready (connect, prepare, load keys)."""


class TimedRequest(Protocol):
    """One kind of request the loop times."""

    @property
    def connected(self) -> bool:
        """A session exists; while not, slots are neither issued nor counted."""
        ...

    def why_not_connected(self) -> tuple[FailureReason, str]:
        """Why there is no session (the reason a request would fail with)."""
        ...

    async def prepare(self) -> None:
        """Get ready to send (prepare statements, load keys); raise if that is not possible."""
        ...

    async def send(self, timeout: float) -> float | None:
        """Send one request and wait for its answer, for at most `timeout` seconds; return
        when it was answered on the loop's clock if known (else it is read on return)."""
        ...


class NotReady(Exception):
    """A request cannot be sent yet for a reason that is not a Cassandra failure (no keys)."""


def max_in_flight(rate: float, timeout: float) -> int:
    """Twice what a stalled datacenter holds at once when timeouts fire on time."""
    return max(2, math.ceil(2 * rate * timeout))


class FixedRateLoop:
    """Drives one `TimedRequest` at a fixed rate and records into one `LatencySeries`."""

    def __init__(
        self,
        request: TimedRequest,
        series: LatencySeries,
        *,
        rate: float,
        timeout: float,
        lags: LagLog,
        lag_flag: float,
        clock: Callable[[], float],
        phase: float = 0.0,
        drain: Callable[[], None] = lambda: None,
    ) -> None:
        self.request = request
        self.series = series
        self.period = 1.0 / rate
        self.phase = phase % 1.0
        """Where in its period this stream's slots fall, so that streams do not send at once."""
        self.timeout = timeout
        self.limit = max_in_flight(rate, timeout)
        self._lags = lags
        self._lag_flag = lag_flag
        self._clock = clock
        self._drain = drain
        """Settles answers waiting for the loop (`CassandraConnection.drain_answers`)."""
        self._in_flight: set[asyncio.Task[None]] = set()
        self.slots = 0
        """Slots that fell due while connected: issued or missed."""
        self.issued = 0
        self.not_ready: tuple[FailureReason, str] | None = (
            FailureReason.UNAVAILABLE,
            "not started",
        )
        """Why requests are not being sent right now (None while they are)."""

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        """Run until cancelled."""
        try:
            while True:
                await self._until_ready()
                await self._drive()
        finally:
            for task in list(self._in_flight):
                task.cancel()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _until_ready(self) -> None:
        logged: str | None = None
        while True:
            if not self.request.connected:
                self.not_ready = self.request.why_not_connected()
            else:
                try:
                    await self.request.prepare()
                except asyncio.CancelledError:
                    raise
                except NotReady as exc:
                    self.not_ready = (FailureReason.ERROR, str(exc))
                except Exception as exc:
                    self.not_ready = (classify(exc), describe(exc))
                else:
                    self.not_ready = None
                    return
                if self.not_ready[1] != logged:
                    logged = self.not_ready[1]
                    log.warning("%s cannot be timed yet: %s", self.series.key.describe, logged)
            await asyncio.sleep(RETRY_PREPARE)

    async def _drive(self) -> None:
        """Issue a request per slot until the session goes away."""
        next_slot = self._clock() + self.phase * self.period
        while True:
            now = self._clock()
            if next_slot > now:
                await asyncio.sleep(next_slot - now)
                now = self._clock()
            # How late this wake-up is: the event loop's lag, as every stream sees it.
            self._lags.note(now - next_slot, now)
            # Answers that arrived since any stream last woke (they did not wake the loop).
            self._drain()
            if not self.request.connected:
                # No session: nothing is measured, and nothing is missed on Cassandra's account.
                return
            due = int((now - next_slot) / self.period) + 1
            # Slots whose answer could no longer arrive within the timeout are missed outright.
            overdue = (now - self.timeout - next_slot) / self.period
            hopeless = 0 if overdue < 0 else min(due, math.floor(overdue) + 1)
            self.slots += due
            if hopeless:
                self.series.record_missed(hopeless)
            for index in range(hopeless, due):
                intended = next_slot + index * self.period
                if len(self._in_flight) >= self.limit:
                    self.series.record_missed()
                    continue
                task = asyncio.create_task(self._time(intended))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            next_slot += due * self.period

    async def _time(self, intended: float) -> None:
        issued = self._clock()
        self.issued += 1
        try:
            answered = await self.request.send(max(intended + self.timeout - issued, 0.001))
        except asyncio.CancelledError:
            raise
        except NotConnected:
            return  # the session closed under us: not a measurement
        except Exception as exc:
            self.series.record_failure(
                classify(exc), describe(exc), lagged=self._lagged(intended, issued)
            )
            return
        end = self._clock() if answered is None else answered
        elapsed = end - intended
        lagged = self._lagged(intended, issued, end)
        if elapsed > self.timeout:
            self.series.record_failure(
                FailureReason.TIMEOUT,
                f"answered after {elapsed:.3f} s, past the {self.timeout:g} s timeout",
                lagged=lagged,
            )
        else:
            self.series.record_success(elapsed, lagged=lagged)

    def _lagged(self, intended: float, issued: float, end: float | None = None) -> bool:
        """The event loop was late while this request was timed, inflating its latency."""
        if issued - intended > self._lag_flag:
            return True
        end = self._clock() if end is None else end
        return self._lags.lag_during(intended, end) > self._lag_flag
