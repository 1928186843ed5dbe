"""The probe API the service side uses: which probes a config enables, what they write, and
their metric collectors. Nothing outside `probes/` imports a probe module but this one."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.schema import TABLES
from exporter.tables import Table
from probes import REGISTRY
from probes.base import Probe, ProbeContext


def build_probes(context: ProbeContext) -> list[Probe]:
    """Every enabled probe instance for the config, in registry order."""
    return [probe for cls in REGISTRY.values() for probe in cls.build(context)]


def tables() -> tuple[Table, ...]:
    """Every table any probe kind writes in the monitoring keyspace."""
    return TABLES


class FamilyCollector(Collector):
    """The metric families of one probe kind's instances."""

    def __init__(self, kind: str, probes: list[Probe]) -> None:
        self.kind = kind
        self.probes = probes

    def collect(self) -> Iterable[Metric]:
        for probe in self.probes:
            yield from probe.collect()


def family_collectors(probes: Iterable[Probe]) -> list[Collector]:
    """One collector per probe kind, to register on the exporter's registry."""
    by_kind: dict[str, list[Probe]] = {}
    for probe in probes:
        by_kind.setdefault(probe.kind, []).append(probe)
    return [FamilyCollector(kind, members) for kind, members in by_kind.items()]


def cassandra_up(probes: Iterable[Probe]) -> bool:
    """False when a probe that tells whether Cassandra answers says it does not."""
    return all(answer for answer in (p.cassandra_up() for p in probes) if answer is not None)


__all__ = [
    "Probe",
    "ProbeContext",
    "Table",
    "build_probes",
    "cassandra_up",
    "family_collectors",
    "tables",
]
