"""Stretching the read models' schedules so that what they ask fits the request budget.

For each datacenter, what the reserved probes send (their expected rate from the config,
then what is measured) is taken off the budget's sustained rate; the read models aim for
`read_model_share` of the rest. Each read model's demand at its own interval comes from
its method's estimate at first, then from the requests it is measured asking (counted
against the time it ran, undone by its stretch). When the read models of a datacenter ask
more than it has left, each of them runs at its interval times the ratio, the worst of the
datacenters it reads: one log line when stretching starts, one when it stops.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.budget import RESERVED, RequestBudget

log = logging.getLogger(__name__)

PRIOR_SECONDS = 30.0
"""How many seconds of measurement the estimate from the config weighs as."""
HALF_LIFE = 300.0
"""Older measurements weigh half after this long."""
CHANGE = 0.15
"""A read model's schedule is changed only when its stretch moves by more than this."""
MIN_SHARE = 0.05
"""What the read models get of a datacenter's rate when the reserved probes want it all."""


@dataclass
class _Demand:
    """A decayed count of requests over a decayed count of seconds, with a prior."""

    prior_rate: float
    count: float = 0.0
    seconds: float = 0.0

    def add(self, count: float, seconds: float, decay: float) -> None:
        self.count = self.count * decay + count
        self.seconds = self.seconds * decay + seconds

    @property
    def rate(self) -> float:
        return (self.count + self.prior_rate * PRIOR_SECONDS) / (self.seconds + PRIOR_SECONDS)


@dataclass
class ReadModelDemand:
    """One read model's schedule: its interval and what it asks of each datacenter."""

    name: str
    interval: float
    demand: dict[str, _Demand]
    stretch: float = 1.0
    asked: dict[str, int] = field(default_factory=dict)


class ScheduleStretch:
    """Keeps each read model's stretch from the budget's buckets and the requests counted."""

    def __init__(
        self,
        budget: RequestBudget,
        reserved: Mapping[str, float],
        models: Mapping[str, tuple[float, Mapping[str, float]]],
    ) -> None:
        """`reserved`: the reserved probes' expected rate per datacenter; `models`: name →
        (interval, expected requests a second per datacenter at that interval)."""
        self.budget = budget
        self.models = {
            name: ReadModelDemand(
                name, interval, {dc: _Demand(rate) for dc, rate in estimate.items()}
            )
            for name, (interval, estimate) in models.items()
        }
        self.reserved = {dc: _Demand(rate) for dc, rate in reserved.items()}
        self._reserved_seen = {dc: 0 for dc in reserved}
        self.datacenter_stretch: dict[str, float] = dict.fromkeys(budget.buckets, 1.0)
        self.stretching = False

    def stretch(self, name: str) -> float:
        model = self.models.get(name)
        return 1.0 if model is None else model.stretch

    def interval(self, name: str, interval: float) -> float:
        return interval * self.stretch(name)

    def update(self, elapsed: float) -> dict[str, float]:
        """Take in `elapsed` seconds of counts; return the read models whose stretch changed
        (name → new stretch)."""
        decay = 0.5 ** (elapsed / HALF_LIFE) if elapsed > 0 else 1.0
        if elapsed > 0:
            self._measure(elapsed, decay)
        asked: dict[str, float] = {}
        for model in self.models.values():
            for dc, demand in model.demand.items():
                asked[dc] = asked.get(dc, 0.0) + demand.rate
        for dc, bucket in self.budget.buckets.items():
            reserved = self.reserved[dc].rate if dc in self.reserved else 0.0
            left = max(bucket.refill - reserved, MIN_SHARE * bucket.refill)
            aim = left * self.budget.config.read_model_share
            self.datacenter_stretch[dc] = max(1.0, asked.get(dc, 0.0) / aim)
        changed: dict[str, float] = {}
        for model in self.models.values():
            wanted = max(
                (self.datacenter_stretch.get(dc, 1.0) for dc, d in model.demand.items()
                 if d.rate > 0),
                default=1.0,
            )
            wanted = 1.0 if wanted <= 1.0 else math.ceil(wanted * 20) / 20
            if wanted == model.stretch:
                continue
            if wanted == 1.0 or abs(wanted / model.stretch - 1) > CHANGE:
                model.stretch = wanted
                changed[model.name] = wanted
        self._say(asked)
        return changed

    def _measure(self, elapsed: float, decay: float) -> None:
        counted = self.budget.asked
        for model in self.models.values():
            for dc in set(model.demand) | {d for (n, d) in counted if n == model.name}:
                total = counted.get((model.name, dc), 0)
                new = total - model.asked.get(dc, 0)
                model.asked[dc] = total
                demand = model.demand.setdefault(dc, _Demand(0.0))
                # Asked at a stretched interval: at its own it would ask `stretch` times more.
                demand.add(new * model.stretch, elapsed, decay)
        for dc, bucket in self.budget.buckets.items():
            total = bucket.requests[RESERVED]
            new = total - self._reserved_seen.get(dc, 0)
            self._reserved_seen[dc] = total
            self.reserved.setdefault(dc, _Demand(0.0)).add(new, elapsed, decay)

    def _say(self, asked: Mapping[str, float]) -> None:
        short = {dc: s for dc, s in self.datacenter_stretch.items() if s > 1.0}
        if short and not self.stretching:
            worst = max(short, key=short.__getitem__)
            log.warning(
                "the request budget (%g/s per datacenter) is short for the read models in %s: "
                "they ask about %.0f/s; their schedules stretch up to x%.2f",
                self.budget.config.requests_per_second_per_datacenter,
                ", ".join(sorted(short)),
                asked.get(worst, 0.0),
                short[worst],
            )
        elif not short and self.stretching:
            log.info("the request budget suffices again: read models run at their intervals")
        self.stretching = bool(short)
