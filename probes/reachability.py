"""Reachability: does each datacenter answer through its own execution profile?"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from exporter.config.probes import ReachabilityConfig
from exporter.connection import classify, describe
from exporter.metric_catalogue import (
    DATACENTER_REACHABILITY_FAILURES,
    DATACENTER_REACHABILITY_SECONDS,
    DATACENTER_REACHABLE,
)
from exporter.results import Check, FailureReason, Observation, ProbeOutcome
from probes.base import Probe, ProbeContext

QUERY = "SELECT data_center FROM system.local"


@dataclass
class _DatacenterState:
    reachable: bool | None = None
    seconds: float | None = None
    failures: dict[FailureReason, int] | None = None


class ReachabilityProbe(Probe):
    kind = "reachability"

    def __init__(self, context: ProbeContext, schedule: ReachabilityConfig) -> None:
        super().__init__(context, schedule)
        self._state = {
            dc: _DatacenterState(failures=dict.fromkeys(FailureReason, 0))
            for dc in self.config.datacenters.all
        }

    @property
    def any_reachable(self) -> bool | None:
        """True if some datacenter answered in the last round; None before the first."""
        known = [s.reachable for s in self._state.values() if s.reachable is not None]
        return any(known) if known else None

    def cassandra_up(self) -> bool | None:
        return bool(self.any_reachable)

    def reachable(self, datacenter: str) -> bool | None:
        return self._state[datacenter].reachable

    async def _ask(self, datacenter: str) -> tuple[str, BaseException | None]:
        # Leave headroom under the run's own timeout, so each datacenter reports itself.
        timeout = max(self.schedule.timeout * 0.8, 0.05)
        started = self.clock.monotonic()
        state = self._state[datacenter]
        try:
            rows = await self.connection.execute(QUERY, datacenter=datacenter, timeout=timeout)
            answered = rows[0].data_center if rows else None
            if answered != datacenter:
                raise RuntimeError(
                    f"routed to datacenter {answered!r} instead of {datacenter!r}"
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.reachable = False
            state.seconds = None
            assert state.failures is not None
            state.failures[classify(exc)] += 1
            return datacenter, exc
        state.reachable = True
        state.seconds = self.clock.monotonic() - started
        return datacenter, None

    async def run(self) -> ProbeOutcome:
        answers = await asyncio.gather(*(self._ask(dc) for dc in self._state))
        failed = [(dc, exc) for dc, exc in answers if exc is not None]
        if not failed:
            return ProbeOutcome.ok()
        detail = "; ".join(f"{dc}: {describe(exc)}" for dc, exc in failed)
        return ProbeOutcome.failed(classify(failed[0][1]), detail)

    def collect(self) -> Iterable[Metric]:
        reachable = DATACENTER_REACHABLE.family(
            "1 if the datacenter answered the last reachability probe through its own "
            "execution profile, 0 if not (refreshed on the probe's schedule)."
        )
        seconds = DATACENTER_REACHABILITY_SECONDS.family(
            "How long the datacenter took to answer the last reachability probe."
        )
        failures = DATACENTER_REACHABILITY_FAILURES.family(
            "Reachability probes a datacenter failed, by bounded reason."
        )
        for dc, state in self._state.items():
            if state.reachable is not None:
                reachable.add_metric([dc], 1.0 if state.reachable else 0.0)
            if state.seconds is not None:
                seconds.add_metric([dc], state.seconds)
            assert state.failures is not None
            for reason, count in state.failures.items():
                failures.add_metric([dc, reason.value], count)
        yield from (reachable, seconds, failures)

    def observations(self) -> Iterable[Observation]:
        write = self.config.datacenters.write
        state = self._state[write]
        value = None if state.reachable is None else float(state.reachable)
        yield Observation(Check.WRITE_PATH, write, value)
