"""Synthetic readings for the health tests: a probe's observations as the evaluator sees them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exporter.clock import FakeClock
from exporter.config import Config, parse_config
from exporter.health.evaluation import HealthEvaluator
from exporter.health.readings import ProbeReading
from exporter.health.snapshot import HealthSnapshot
from exporter.results import Check, Observation
from tests.support import merge

BASE_CONFIG: dict[str, Any] = {
    "cluster": {"contact_points": ["127.0.0.1"]},
    "datacenters": {"write": "us-east", "read": ["ca-central", "eu-west"]},
    "read_models": [
        {
            "name": "orders_by_customer",
            "method": "checkpoint",
            "checkpoint": {
                "head_query": "SELECT max(seq) FROM shop.events",
                "checkpoint_query": "SELECT seq FROM shop.checkpoints",
            },
        },
        {
            "name": "order_totals",
            "method": "sentinel",
            "sentinel": {
                "write": "INSERT INTO shop.totals (id) VALUES (:sentinel_id)",
                "read": "SELECT id FROM shop.totals WHERE id = :sentinel_id",
            },
        },
    ],
}


def health_config(overrides: dict[str, Any] | None = None) -> Config:
    return parse_config(merge(BASE_CONFIG, overrides or {}))


class FakeProbe:
    """Stands for a probe: each `report` is a new reading (a completed run)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs = 0
        self.observations: tuple[Observation, ...] = ()

    def report(self, *observations: Observation) -> None:
        self.runs += 1
        self.observations = observations

    def reading(self) -> ProbeReading:
        return ProbeReading(self.name, self.runs, self.observations)


class Harness:
    """An evaluator on a fake clock, fed by fake probes, one evaluation per `tick`."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or health_config()
        self.clock = FakeClock()
        self.evaluator = HealthEvaluator(self.config, self.clock)
        self.probes: dict[str, FakeProbe] = {}

    def probe(self, name: str) -> FakeProbe:
        return self.probes.setdefault(name, FakeProbe(name))

    def tick(self, seconds: float = 1.0) -> HealthSnapshot:
        self.clock.advance(seconds)
        return self.evaluator.evaluate([p.reading() for p in self.probes.values()])

    def feed(self, probe: str, *observations: Observation) -> HealthSnapshot:
        """A new reading from `probe`, then one evaluation."""
        self.probe(probe).report(*observations)
        return self.tick()

    def status(self, check: Check, component: str) -> str:
        for item in self.evaluator.snapshot.overall.components.get(check, ()):
            if item.component == component:
                return item.status.value
        raise KeyError((check, component))


def write_path(value: float | None, dc: str = "us-east") -> Observation:
    return Observation(Check.WRITE_PATH, dc, value)


def lag(seconds: float | None, dc: str = "ca-central") -> Observation:
    return Observation(Check.REPLICATION_LAG, dc, seconds)


def statuses(history: Iterable[HealthSnapshot], check: Check, component: str) -> list[str]:
    out = []
    for snapshot in history:
        for item in snapshot.overall.components.get(check, ()):
            if item.component == component:
                out.append(item.status.value)
    return out
