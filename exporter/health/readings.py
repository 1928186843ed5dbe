"""What the evaluator reads of the probes: one reading per probe, taken without I/O."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from exporter.results import Observation

log = logging.getLogger("exporter.health")


@dataclass(frozen=True)
class ProbeReading:
    """What one probe holds at one moment. `sequence` changes when the probe has a new
    reading (its completed runs); `observations` is None when they could not be read."""

    source: str
    sequence: int
    observations: tuple[Observation, ...] | None


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
