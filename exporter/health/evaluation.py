"""Health verdicts from the probes' cached observations, the thresholds and hysteresis.

Evaluation is a pure step over what the probes hold: `HealthEvaluator.evaluate` takes one
reading per probe and returns an immutable `HealthSnapshot`. It keeps each component's
hysteresis state between steps, and how long each aggregate has held its status; running
it on a cadence is `exporter.health.monitor`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.clock import Clock
from exporter.config import Config
from exporter.health.hysteresis import Hysteresis
from exporter.health.readings import ProbeReading
from exporter.health.snapshot import Aggregate, ComponentHealth, HealthSnapshot, HealthView
from exporter.health.verdicts import RANK, Reason, Status, judge, threshold_for, worst
from exporter.results import Check, Observation

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
