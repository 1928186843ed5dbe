"""What every probe is: a name, a schedule, an async run, and cached state to export.

A probe's `run` does the I/O on its schedule; `collect` and `observations` only read what
the last runs left behind, so a scrape or a health request never waits on Cassandra.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from prometheus_client.metrics_core import Metric

from exporter.clock import Clock, SystemClock
from exporter.config import Config, ProbeSchedule
from exporter.connection import CassandraConnection
from exporter.results import Observation, ProbeOutcome


@dataclass(frozen=True)
class ProbeContext:
    """What a probe is given: the config, the shared connection, a clock."""

    config: Config
    connection: CassandraConnection
    clock: Clock = field(default_factory=SystemClock)
    starting_until: float = -math.inf
    """Monotonic time until which the exporter is starting (its startup grace): failures of
    what has never worked yet are warm-up, not news."""


class Probe(ABC):
    """One scheduled measurement. Subclasses set `kind` and implement `run`.

    `kind` names the probe's entry in `probes.registry`; `name` names this instance (the
    `probe` label): the same as `kind` unless one kind builds several instances, such as
    one per declared read model.
    """

    kind: ClassVar[str]

    def __init__(self, context: ProbeContext, schedule: ProbeSchedule, name: str = "") -> None:
        self.context = context
        self.config = context.config
        self.connection = context.connection
        self.clock = context.clock
        self.schedule = schedule
        self.name = name or self.kind
        self.log = logging.getLogger(f"probes.{self.name}")

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work that outlives one run (optional)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop what `start` began; called on shutdown."""

    @abstractmethod
    async def run(self) -> ProbeOutcome:
        """One scheduled run. Exceptions are caught and classified by the runner."""

    def collect(self) -> Iterable[Metric]:
        """Metric families from cached state, with this instance's series; no I/O.

        Instances of one kind may yield families of the same name: the kind's collector
        (`probes.registry.family_collectors`) exports each of them once, with every series.
        """
        return ()

    def observations(self) -> Iterable[Observation]:
        """Current readings for the health checks; no I/O."""
        return ()

    def cassandra_up(self) -> bool | None:
        """Whether Cassandra answers, for a probe that tells (`cqrs_up`); None: no opinion."""
        return None
