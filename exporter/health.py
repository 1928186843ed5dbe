"""Health verdicts from the probes' cached observations, the thresholds and hysteresis.

Evaluation is a pure step over what the probes hold: `HealthEvaluator.evaluate` takes one
reading per probe and returns an immutable `HealthSnapshot`. `HealthMonitor` runs that step
on a fixed cadence, so HTTP handlers only read the latest snapshot and never wait on
Cassandra. Hysteresis counts a probe's *new* readings (one per completed probe run), not
evaluations, so neither the request rate nor the evaluation cadence changes its meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from exporter.clock import Clock
from exporter.config import Config
from exporter.results import Check, Observation

log = logging.getLogger(__name__)


class Status(StrEnum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"


RANK = {Status.UNKNOWN: 0, Status.UP: 1, Status.DEGRADED: 2, Status.DOWN: 3}
"""DOWN > DEGRADED > UP > UNKNOWN: an aggregate takes the highest rank of its parts."""
BREACHES = frozenset({Status.DEGRADED, Status.DOWN})

UNITS: Mapping[Check, str | None] = {
    Check.WRITE_PATH: None,
    Check.REPLICATION_LAG: "seconds",
    Check.READ_MODEL_SYNC_LAG: "seconds",
    Check.COMMAND_LATENCY_P99: "seconds",
    Check.QUERY_LATENCY_P99: "seconds",
    Check.SYNC_FAILURE_RATE: "ratio",
}


def worst(statuses: Iterable[Status]) -> Status:
    """The aggregate of several statuses; UNKNOWN when there are none."""
    return max(statuses, key=RANK.__getitem__, default=Status.UNKNOWN)


def threshold_for(check: Check, config: Config) -> float | None:
    """The configured threshold in base units; the write path has none (it is up or not)."""
    if check is Check.WRITE_PATH:
        return None
    return float(getattr(config.thresholds, check.value))


class Reason(StrEnum):
    """Why a reading gives no verdict; bounded, safe for bodies."""

    NO_DATA = "no data yet"
    INSUFFICIENT_SAMPLES = "insufficient samples"


def judge(observation: Observation, config: Config) -> Status:
    """The raw status of one reading, before hysteresis.

    The write path is available at value 1 and unavailable at 0; every other check breaches
    when its compared value exceeds the threshold. A breach takes the check's severity.
    """
    value = observation.comparable
    if observation.value is None or value is None or not observation.sufficient:
        return Status.UNKNOWN
    check = observation.check
    if check is Check.WRITE_PATH:
        breached = value < 1
    else:
        threshold = threshold_for(check, config)
        assert threshold is not None
        breached = value > threshold
    if breached:
        return Status(config.health.severities.of(check).value)
    return Status.UP


class Hysteresis:
    """One component's state: it moves into a breach only after `raise_after` consecutive
    readings at least that bad, and out of one only after `clear_after` readings better.

    Moves between UP and UNKNOWN (neither a breach) take effect at once.
    """

    def __init__(self, raise_after: int, clear_after: int, since: float) -> None:
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.status = Status.UNKNOWN
        self.since = since
        self._recent: deque[int] = deque(maxlen=max(raise_after, clear_after))

    def step(self, raw: Status, now: float) -> bool:
        """Take one new reading; return True when the status changed."""
        self._recent.append(RANK[raw])
        current = RANK[self.status]
        target: int | None = None
        if len(self._recent) >= self.raise_after:
            # The worst level that every one of the last N readings reached.
            floor = min(list(self._recent)[-self.raise_after :])
            if floor > current and floor >= RANK[Status.DEGRADED]:
                target = floor
        if target is None and self.status in BREACHES and len(self._recent) >= self.clear_after:
            # The worst level among the last M readings, if all were better than now.
            ceiling = max(list(self._recent)[-self.clear_after :])
            if ceiling < current:
                target = ceiling
        if target is None and self.status not in BREACHES and raw not in BREACHES:
            target = RANK[raw]
        if target is None or target == current:
            return False
        self.status = next(s for s, r in RANK.items() if r == target)
        self.since = now
        return True


@dataclass(frozen=True)
class ProbeReading:
    """What one probe holds at one moment. `sequence` changes when the probe has a new
    reading (its completed runs); `observations` is None when they could not be read."""

    source: str
    sequence: int
    observations: tuple[Observation, ...] | None


@dataclass(frozen=True)
class ComponentHealth:
    """One check component after hysteresis, with the reading that was last judged."""

    check: Check
    component: str
    status: Status
    since: float
    reading: Status
    """The raw status of the latest reading (what hysteresis is acting on)."""
    value: float | None
    compared: float | None
    threshold: float | None
    samples: int | None
    reason: Reason | None


@dataclass(frozen=True)
class Aggregate:
    status: Status
    since: float


@dataclass(frozen=True)
class HealthView:
    """The components in one scope (everything, or one group) and their aggregates."""

    status: Status
    since: float
    checks: Mapping[Check, Aggregate]
    components: Mapping[Check, tuple[ComponentHealth, ...]]


@dataclass(frozen=True)
class HealthSnapshot:
    """Everything the endpoints and metrics show, from one evaluation."""

    evaluated_at: float | None
    """Wall-clock time of the evaluation; None before the first one."""
    overall: HealthView
    groups: Mapping[str, HealthView]
    cache: dict[tuple[str | None, bool], bytes] = field(default_factory=dict, compare=False)
    """Rendered bodies, filled on first use by the HTTP layer."""

    def view(self, group: str | None) -> HealthView | None:
        return self.overall if group is None else self.groups.get(group)


Key = tuple[Check, str]


class HealthEvaluator:
    """Turns probe readings into snapshots, keeping each component's hysteresis state."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._started = clock.time()
        self._states: dict[Key, Hysteresis] = {}
        self._shown: dict[Key, tuple[Observation, Status]] = {}
        self._sequences: dict[str, int] = {}
        self._keys_by_source: dict[str, set[Key]] = {}
        self._aggregates: dict[tuple[str, ...], Aggregate] = {}
        self.snapshot = self._build(None)

    def evaluate(self, readings: Iterable[ProbeReading]) -> HealthSnapshot:
        """One evaluation: step hysteresis on new readings, then aggregate."""
        now = self.clock.time()
        fresh: dict[Key, list[Observation]] = {}
        present: set[Key] = set()
        for reading in readings:
            if reading.observations is None:
                present |= self._keys_by_source.get(reading.source, set())
                continue
            is_new = self._sequences.get(reading.source) != reading.sequence
            self._sequences[reading.source] = reading.sequence
            keys = {(o.check, o.component) for o in reading.observations}
            self._keys_by_source[reading.source] = keys
            present |= keys
            if is_new:
                for observation in reading.observations:
                    fresh.setdefault((observation.check, observation.component), []).append(
                        observation
                    )
        for key in set(self._states) - present:
            # A component no probe reports any more disappears, with its series.
            del self._states[key]
            self._shown.pop(key, None)
        health = self.config.health
        for key in present:
            if key not in self._states:
                self._states[key] = Hysteresis(health.raise_after, health.clear_after, now)
            observations = fresh.get(key)
            if not observations:
                continue
            # Several probes may report the same component in one evaluation (e.g. every
            # probe that writes reports the write path): the worst new reading counts.
            judged = [(judge(o, self.config), o) for o in observations]
            raw, observation = max(judged, key=lambda pair: RANK[pair[0]])
            self._states[key].step(raw, now)
            self._shown[key] = (observation, raw)
        self.snapshot = self._build(now)
        return self.snapshot

    def _component(self, key: Key) -> ComponentHealth:
        state = self._states[key]
        check, component = key
        unseen = (Observation(check, component, None), Status.UNKNOWN)
        observation, raw = self._shown.get(key, unseen)
        reason = None
        if observation.value is None:
            reason = Reason.NO_DATA
        elif not observation.sufficient:
            reason = Reason.INSUFFICIENT_SAMPLES
        return ComponentHealth(
            check=check,
            component=component,
            status=state.status,
            since=state.since,
            reading=raw,
            value=observation.value,
            compared=observation.compared,
            threshold=threshold_for(check, self.config),
            samples=observation.samples,
            reason=reason,
        )

    def _aggregate(self, path: tuple[str, ...], status: Status, now: float) -> Aggregate:
        previous = self._aggregates.get(path)
        if previous is not None and previous.status is status:
            return previous
        self._aggregates[path] = Aggregate(status, now)
        return self._aggregates[path]

    def _view(
        self, path: tuple[str, ...], components: Iterable[ComponentHealth], now: float
    ) -> HealthView:
        by_check: dict[Check, list[ComponentHealth]] = {}
        for item in sorted(components, key=lambda c: (list(Check).index(c.check), c.component)):
            by_check.setdefault(item.check, []).append(item)
        checks = {
            check: self._aggregate((*path, check.value), worst(c.status for c in items), now)
            for check, items in by_check.items()
        }
        overall = self._aggregate(path, worst(a.status for a in checks.values()), now)
        return HealthView(
            overall.status,
            overall.since,
            checks,
            {check: tuple(items) for check, items in by_check.items()},
        )

    def _build(self, now: float | None) -> HealthSnapshot:
        at = self._started if now is None else now
        components = {key: self._component(key) for key in self._states}
        overall = self._view(("",), components.values(), at)
        groups = {}
        for name, group in self.config.health.groups.items():
            members = [
                item
                for key, item in components.items()
                if any(
                    m.check is key[0] and m.component in (None, key[1]) for m in group.checks
                )
            ]
            # A named component no probe reports (yet) shows as UNKNOWN rather than vanish.
            members += [
                self._placeholder(m.check, m.component)
                for m in group.checks
                if m.component is not None and (m.check, m.component) not in components
            ]
            groups[name] = self._view(("group", name), members, at)
        return HealthSnapshot(now, overall, groups)

    def _placeholder(self, check: Check, component: str) -> ComponentHealth:
        return ComponentHealth(
            check=check,
            component=component,
            status=Status.UNKNOWN,
            since=self._started,
            reading=Status.UNKNOWN,
            value=None,
            compared=None,
            threshold=threshold_for(check, self.config),
            samples=None,
            reason=Reason.NO_DATA,
        )


class ObservationSource(Protocol):
    """What the evaluator needs of a probe."""

    name: str

    def observations(self) -> Iterable[Observation]: ...


def probe_readings(
    probes: Iterable[ObservationSource], runs: Callable[[str], int]
) -> list[ProbeReading]:
    """Read every probe's observations; a probe that fails to answer keeps its last state."""
    readings = []
    for probe in probes:
        observations: tuple[Observation, ...] | None
        try:
            observations = tuple(probe.observations())
        except Exception:
            log.exception("probe %s could not report its observations", probe.name)
            observations = None
        readings.append(ProbeReading(probe.name, runs(probe.name), observations))
    return readings


class HealthMonitor:
    """Runs the evaluator on a fixed cadence in the background; never touches Cassandra."""

    def __init__(
        self,
        evaluator: HealthEvaluator,
        read: Callable[[], Iterable[ProbeReading]],
        interval: float,
    ) -> None:
        self.evaluator = evaluator
        self._read = read
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last_tick: float | None = None

    @property
    def snapshot(self) -> HealthSnapshot:
        return self.evaluator.snapshot

    def evaluate_now(self) -> HealthSnapshot:
        snapshot = self.evaluator.evaluate(self._read())
        self._last_tick = self.evaluator.clock.monotonic()
        return snapshot

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="health-evaluation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def alive(self) -> bool:
        """The evaluation task runs and has evaluated recently."""
        if self._task is None or self._task.done() or self._last_tick is None:
            return False
        quiet_for = self.evaluator.clock.monotonic() - self._last_tick
        return quiet_for <= max(10 * self.interval, 30.0)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                self.evaluate_now()
            except Exception:  # an evaluation bug must not stop later evaluations
                log.exception("health evaluation failed")
            # A fixed cadence; ticks missed while the loop was busy are dropped, not replayed.
            next_at += self.interval
            now = loop.time()
            if next_at < now:
                next_at = now + self.interval
            await asyncio.sleep(next_at - now)
