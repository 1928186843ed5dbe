"""The probe runner: timeouts, classification, skipped runs, first round, liveness."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from exporter.clock import FakeClock
from exporter.config import ProbeSchedule, parse_config
from exporter.connection import CassandraConnection, NotConnected
from exporter.results import FailureReason, ProbeOutcome
from exporter.scheduler import ProbeRunner
from probes.registry import Probe, ProbeContext
from tests.support import poll_until

CONFIG = parse_config(
    {"cluster": {"contact_points": ["127.0.0.1"]}, "datacenters": {"write": "us-east"}}
)


class ScriptedProbe(Probe):
    """A probe whose run does what the test says: sleep, raise or succeed."""

    kind = "scripted"

    def __init__(self, schedule: ProbeSchedule, behaviour: Any, name: str = "scripted") -> None:
        super().__init__(ProbeContext(CONFIG, CassandraConnection(CONFIG)), schedule, name)
        self.behaviour = behaviour
        self.started = 0
        self.running = 0
        self.max_running = 0

    @classmethod
    def build(cls, context: ProbeContext) -> list[Probe]:
        return []

    async def run(self) -> ProbeOutcome:
        self.started += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            return await self.behaviour()
        finally:
            self.running -= 1


async def test_a_probe_slower_than_its_interval_is_skipped_and_counted_never_stacked() -> None:
    # Runs take 2.5 intervals but the timeout is generous relative to the sleep, so
    # each run occupies the job while later triggers come due.
    async def slow() -> ProbeOutcome:
        await asyncio.sleep(0.9)
        return ProbeOutcome.ok()

    probe = ScriptedProbe(ProbeSchedule(interval="1s", timeout="950ms"), slow)
    runner = ProbeRunner([probe])
    # Intervals below one second are what show skipping; the schedule model is the real one,
    # the trigger is sped up through the job after start.
    await runner.start()
    try:
        assert runner._scheduler is not None
        runner._scheduler.reschedule_job(probe.name, trigger="interval", seconds=0.3)
        await poll_until(lambda: runner.states[probe.name].skipped >= 3, timeout=20)
    finally:
        await runner.stop()
    assert probe.max_running == 1
    assert runner.states[probe.name].runs >= 1


async def test_a_run_over_its_timeout_fails_with_reason_timeout() -> None:
    async def hang() -> ProbeOutcome:
        await asyncio.sleep(10)
        return ProbeOutcome.ok()

    probe = ScriptedProbe(ProbeSchedule(interval="2s", timeout="200ms"), hang)
    runner = ProbeRunner([probe])
    outcome = await runner.run_once(probe)
    assert not outcome.success
    assert outcome.reason is FailureReason.TIMEOUT
    assert runner.states[probe.name].failures[FailureReason.TIMEOUT] == 1


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (NotConnected("no session"), FailureReason.UNAVAILABLE),
        (TimeoutError(), FailureReason.TIMEOUT),
        (RuntimeError("boom"), FailureReason.ERROR),
    ],
)
async def test_exceptions_become_bounded_failure_reasons(
    exc: Exception, reason: FailureReason
) -> None:
    async def fail() -> ProbeOutcome:
        raise exc

    probe = ScriptedProbe(ProbeSchedule(interval="2s", timeout="1s"), fail)
    runner = ProbeRunner([probe])
    outcome = await runner.run_once(probe)
    assert (outcome.success, outcome.reason) == (False, reason)
    state = runner.states[probe.name]
    assert state.runs == 1 and state.last_success_time is None


async def test_success_records_time_and_first_round() -> None:
    async def ok() -> ProbeOutcome:
        return ProbeOutcome.ok()

    probes = [
        ScriptedProbe(ProbeSchedule(interval="2s", timeout="1s"), ok, name="a"),
        ScriptedProbe(ProbeSchedule(interval="2s", timeout="1s"), ok, name="b"),
    ]
    runner = ProbeRunner(list(probes))
    assert not runner.first_round_done
    await runner.run_once(probes[0])
    assert not runner.first_round_done
    await runner.run_once(probes[1])
    assert runner.first_round_done
    assert runner.states["a"].last_success_time is not None


async def test_the_last_failure_keeps_its_reason_and_time_after_a_success() -> None:
    outcomes = iter([ProbeOutcome.failed(FailureReason.UNAVAILABLE, "detail"), ProbeOutcome.ok()])

    async def scripted() -> ProbeOutcome:
        return next(outcomes)

    clock = FakeClock()
    probe = ScriptedProbe(ProbeSchedule(interval="2s", timeout="1s"), scripted)
    runner = ProbeRunner([probe], clock)
    await runner.run_once(probe)
    state = runner.states[probe.name]
    assert state.last_run_time == state.last_failure_time == clock.time()
    assert state.last_failure_reason is FailureReason.UNAVAILABLE
    assert state.last_success_time is None
    failed_at = clock.time()
    clock.advance(5)
    await runner.run_once(probe)
    assert state.last_run_time == state.last_success_time == failed_at + 5
    assert (state.last_failure_time, state.last_failure_reason) == (
        failed_at,
        FailureReason.UNAVAILABLE,
    )


async def test_liveness_follows_the_scheduler() -> None:
    async def ok() -> ProbeOutcome:
        return ProbeOutcome.ok()

    probe = ScriptedProbe(ProbeSchedule(interval="1s", timeout="500ms"), ok)
    runner = ProbeRunner([probe])
    assert not runner.alive()
    await runner.start()
    try:
        assert runner.alive()
        await poll_until(lambda: probe.started >= 1, timeout=10)
    finally:
        await runner.stop()
    assert not runner.alive()


async def test_failures_before_the_first_success_are_starting_and_logged_once_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = [
        ProbeOutcome.failed(FailureReason.UNAVAILABLE, "pool still opening"),
        ProbeOutcome.failed(FailureReason.UNAVAILABLE, "pool still opening"),
        ProbeOutcome.ok(),
        ProbeOutcome.failed(FailureReason.TIMEOUT, "no answer"),
    ]

    async def scripted() -> ProbeOutcome:
        return outcomes.pop(0)

    probe = ScriptedProbe(ProbeSchedule(interval="1h", timeout="1s"), scripted)
    runner = ProbeRunner([probe], quiet_until=time.monotonic() + 60)
    caplog.set_level("DEBUG", logger="exporter.scheduler")
    for _ in range(2):
        await runner.run_once(probe)
    state = runner.states[probe.name]
    assert state.starting and state.failures[FailureReason.UNAVAILABLE] == 2
    starting = [r for r in caplog.records if "is starting" in r.getMessage()]
    assert [r.levelname for r in starting] == ["INFO", "DEBUG"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]

    await runner.run_once(probe)
    assert not state.starting
    assert not [r for r in caplog.records if "recovered" in r.getMessage()]
    await runner.run_once(probe)  # a failure after the first success is news again
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "probe scripted failed (timeout): no answer" in warning.getMessage()


async def test_a_probe_that_never_succeeds_warns_once_the_startup_grace_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> ProbeOutcome:
        return ProbeOutcome.failed(FailureReason.UNAVAILABLE, "no host available")

    probe = ScriptedProbe(ProbeSchedule(interval="1h", timeout="1s"), failing)
    runner = ProbeRunner([probe], quiet_until=time.monotonic() + 0.2)
    caplog.set_level("INFO", logger="exporter.scheduler")
    await runner.run_once(probe)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    await asyncio.sleep(0.25)
    await runner.run_once(probe)
    await runner.run_once(probe)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "failed (unavailable)" in warnings[0].getMessage()
    assert not runner.states[probe.name].starting
