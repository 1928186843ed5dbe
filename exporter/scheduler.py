"""Runs every probe on its own schedule under one AsyncIOScheduler, and records each run.

Each run goes through one wrapper that applies the probe's timeout and turns any exception
into a bounded failure reason, so a probe failure never escapes into the scheduler. A run
still going when its next one is due is skipped and counted, never stacked.

Each run and each probe's start is marked with the probe's name for the request budget
(`exporter.budget`). With a `ScheduleStretch`, the read models run at their stretched
intervals (first runs spread over them) and the stretch is looked at again every few
seconds. How late each run starts against its schedule is kept as a histogram (`drift`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.budget import requesting
from exporter.clock import Clock, SystemClock
from exporter.connection import classify, describe
from exporter.results import FailureReason, ProbeOutcome
from exporter.stretch import ScheduleStretch
from probes.registry import Probe, read_model_share

log = logging.getLogger(__name__)


@dataclass
class ProbeRunState:
    """What the runs of one probe have left behind, for metrics, readiness and the status page."""

    runs: int = 0
    skipped: int = 0
    failures: dict[FailureReason, int] = field(
        default_factory=lambda: dict.fromkeys(FailureReason, 0)
    )
    last_outcome: ProbeOutcome | None = None
    last_duration: float | None = None
    last_run_time: float | None = None
    """Wall-clock time of the last run's end, successful or not."""
    last_success_time: float | None = None
    """Wall-clock time of the last successful run's end."""
    last_failure_time: float | None = None
    """Wall-clock time of the last failed run's end."""
    last_failure_reason: FailureReason | None = None
    """The bounded reason of the last failed run (its detail goes to the log only)."""
    starting: bool = True
    """No run has succeeded yet and the startup grace is not over: failures are expected."""


DRIFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STRETCH_EVERY = 5.0
"""Seconds between two looks at the read models' schedule stretch."""
STRETCH_JOB = "budget-stretch"


@dataclass
class Drift:
    """How late runs started against their scheduled time: cumulative bucket counts."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(DRIFT_BUCKETS) + 1))
    total: float = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.total += seconds
        for index, bound in enumerate(DRIFT_BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1
                return
        self.counts[-1] += 1

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, `+Inf` last."""
        out, running = [], 0
        for bound, count in zip((*map(str, DRIFT_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class ProbeRunner:
    """Owns the scheduler and the probes' lifecycles."""

    def __init__(
        self,
        probes: list[Probe],
        clock: Clock | None = None,
        *,
        quiet_until: float = -math.inf,
        stretch: ScheduleStretch | None = None,
    ) -> None:
        """Until `quiet_until` (monotonic), a probe that has not succeeded yet is starting: its
        failures are logged once, at INFO, rather than as warnings."""
        self.stretch = stretch
        self.drift = Drift()
        self._scheduled: dict[str, float] = {}
        """Job id → wall time the run just submitted was due at."""
        self._first_due: dict[str, float] = {}
        """Probe name → monotonic time its first run is due, when spread."""
        self.probes = probes
        self.clock = clock or SystemClock()
        self.states: dict[str, ProbeRunState] = {p.name: ProbeRunState() for p in probes}
        self._scheduler: AsyncIOScheduler | None = None
        self._last_activity = self.clock.monotonic()
        self._started = False
        self._stopping = False
        self._in_flight: set[asyncio.Task[object]] = set()
        self._quiet_until = quiet_until

    @property
    def started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Start each probe's background work, then the scheduler; first runs are at once."""
        for probe in self.probes:
            with requesting(probe.name, read_model=read_model_share(probe)):
                await probe.start()
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        now = datetime.now(UTC)
        if self.stretch is not None:
            self.stretch.update(0.0)
        stretched = [p for p in self.probes if self._stretch(p) > 1.0]
        for probe in self.probes:
            interval = probe.schedule.interval * self._stretch(probe)
            first = now
            if probe in stretched:
                # Stretched, the read models would otherwise all start at once: spread them.
                offset = interval * stretched.index(probe) / len(stretched)
                first = now + timedelta(seconds=offset)
                self._first_due[probe.name] = self.clock.monotonic() + offset + interval
            scheduler.add_job(
                self.run_once,
                IntervalTrigger(seconds=interval, timezone=UTC),
                args=[probe],
                id=probe.name,
                name=probe.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=first,
            )
        if self.stretch is not None:
            scheduler.add_job(
                self._restretch,
                IntervalTrigger(seconds=STRETCH_EVERY, timezone=UTC),
                id=STRETCH_JOB,
                max_instances=1,
                coalesce=True,
            )
        scheduler.start()
        self._scheduler = scheduler
        self._started = True
        self._last_activity = self.clock.monotonic()

    async def stop(self) -> None:
        """Stop scheduling, cancel runs still going, then stop each probe's background work."""
        self._started = False
        self._stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        running = [task for task in self._in_flight if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=5.0)
        for probe in self.probes:
            try:
                await probe.stop()
            except Exception as exc:  # shutdown goes on for the others
                log.warning("probe %s did not stop cleanly: %s", probe.name, describe(exc))

    def _stretch(self, probe: Probe) -> float:
        return 1.0 if self.stretch is None else self.stretch.stretch(probe.name)

    async def _restretch(self) -> None:
        """Look at the stretch again; reschedule the read models whose stretch moved."""
        if self.stretch is None or self._scheduler is None:
            return
        changed = self.stretch.update(STRETCH_EVERY)
        by_name = {p.name: p for p in self.probes}
        for name, stretch in changed.items():
            probe = by_name.get(name)
            if probe is None:
                continue
            job = self._scheduler.get_job(name)
            if job is None or job.next_run_time is None:
                continue
            interval = probe.schedule.interval * stretch
            # Keep the job's phase: rescheduled together, they would all run at once.
            now = datetime.now(UTC)
            ahead = max(0.0, (job.next_run_time - now).total_seconds()) % interval
            following = now + timedelta(seconds=ahead)
            job.modify(
                trigger=IntervalTrigger(seconds=interval, start_date=following, timezone=UTC),
                next_run_time=following,
                misfire_grace_time=max(1, int(interval)),
            )
            log.debug("probe %s now runs every %.3g s (x%.2f)", name, interval, stretch)

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        if event.scheduled_run_times:
            self._scheduled[event.job_id] = event.scheduled_run_times[-1].timestamp()

    def _on_skipped(self, event: JobExecutionEvent) -> None:
        state = self.states.get(event.job_id)
        if state is not None:
            state.skipped += 1
            self._last_activity = self.clock.monotonic()
            log.debug("probe %s skipped a run: the previous one is still going", event.job_id)

    async def run_once(self, probe: Probe) -> ProbeOutcome:
        """Run a probe once under its timeout; never raises (except on cancellation)."""
        state = self.states[probe.name]
        started = self.clock.monotonic()
        self._last_activity = started
        due = self._scheduled.pop(probe.name, None)
        if due is not None:
            self.drift.add(self.clock.time() - due)

        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            with requesting(probe.name, read_model=read_model_share(probe)):
                outcome = await asyncio.wait_for(probe.run(), timeout=probe.schedule.timeout)
        except TimeoutError:
            outcome = ProbeOutcome.failed(
                FailureReason.TIMEOUT, f"no result within {probe.schedule.timeout:g} s"
            )
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by our own shutdown: end quietly rather than as a job error.
            return ProbeOutcome.failed(FailureReason.ERROR, "cancelled at shutdown")
        except Exception as exc:
            outcome = ProbeOutcome.failed(classify(exc), describe(exc))
        finally:
            if task is not None:
                self._in_flight.discard(task)
        state.last_duration = self.clock.monotonic() - started
        state.last_run_time = self.clock.time()
        state.runs += 1
        previous = state.last_outcome
        state.last_outcome = outcome
        if outcome.success:
            state.last_success_time = state.last_run_time
            if state.starting:
                state.starting = False
            elif previous is not None and not previous.success:
                log.info("probe %s recovered", probe.name)
            return outcome
        assert outcome.reason is not None
        state.failures[outcome.reason] += 1
        state.last_failure_time = state.last_run_time
        state.last_failure_reason = outcome.reason
        if state.starting and self.clock.monotonic() < self._quiet_until:
            level = logging.INFO if previous is None else logging.DEBUG
            log.log(level, "probe %s is starting (%s): %s", probe.name, outcome.reason.value,
                    outcome.detail)
            return outcome
        if state.starting:
            state.starting = False
            changed = True  # the grace is over: the first failure after it is news
        else:
            changed = previous is None or previous.success or previous.reason != outcome.reason
        log.log(
            logging.WARNING if changed else logging.DEBUG,
            "probe %s failed (%s): %s",
            probe.name,
            outcome.reason.value,
            outcome.detail,
        )
        return outcome

    @property
    def first_round_done(self) -> bool:
        """Every probe has finished at least one run, successful or not (a stretched read
        model whose spread first run is not due yet aside)."""
        now = self.clock.monotonic()
        return all(
            state.runs > 0 or self._first_due.get(name, -math.inf) > now
            for name, state in self.states.items()
        )

    def alive(self) -> bool:
        """The scheduler is running and has started or skipped a run recently."""
        if not self._started or self._scheduler is None or not self._scheduler.running:
            return False
        if not self.probes:
            return True
        longest = max(p.schedule.interval for p in self.probes)
        quiet_for = self.clock.monotonic() - self._last_activity
        return quiet_for <= max(3 * longest, 30.0)
