"""The probe API the service side uses: which probes a config enables, what they write, and
their metric collectors. Nothing outside `probes/` imports a probe module but this one.

Each probe kind names the config sections it runs on and a factory: a function of the
context and one section that returns the section's probe. The registry calls it once per
enabled section, so `enabled` is judged here alone. Beside the tables a kind writes, it
declares the CQL it runs on tables that are not its own (Cassandra's system tables):
`exporter.grants` grants what that CQL and the sections' own CQL need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.config import Config, ProbeSchedule
from exporter.tables import Table
from probes import latency, read_models, replication
from probes.base import Probe, ProbeContext
from probes.reachability import QUERY as REACHABILITY_QUERY
from probes.reachability import ReachabilityProbe

S = TypeVar("S", bound=ProbeSchedule)


@dataclass(frozen=True)
class Kind(Generic[S]):
    """One probe kind: the config sections it runs on, its factory, the tables it writes."""

    sections: Callable[[Config], Sequence[S]]
    """The config sections of the kind's probes: one probe for each enabled one."""
    factory: Callable[[ProbeContext, S], Probe]
    tables: tuple[Table, ...] = ()
    """The tables its probes write in the monitoring keyspace."""
    parent: Callable[[Config], ProbeSchedule] | None = None
    """The section the kind's sections are nested in, when that one must be enabled too."""
    statements: tuple[str, ...] = ()
    """The CQL its probes run on tables other than their own (system tables), as the code
    builds it. The CQL a section declares (read models, latency queries) is the config's."""

    def enabled(self, config: Config) -> list[S]:
        """The kind's enabled sections in the config: one probe each."""
        if self.parent is not None and not self.parent(config).enabled:
            return []
        return [s for s in self.sections(config) if s.enabled]

    def build(self, context: ProbeContext) -> list[Probe]:
        """The kind's probes for the config: one per enabled section."""
        return [self.factory(context, s) for s in self.enabled(context.config)]


def _kind(
    sections: Callable[[Config], Sequence[S]],
    factory: Callable[[ProbeContext, S], Probe],
    tables: tuple[Table, ...] = (),
    parent: Callable[[Config], ProbeSchedule] | None = None,
    statements: tuple[str, ...] = (),
) -> Kind[Any]:
    """A kind whose factory is checked against its sections (in the map, S would be Any)."""
    return Kind(sections, factory, tables, parent, statements)


KINDS: dict[str, Kind[Any]] = {
    "reachability": _kind(
        lambda c: [c.probes.reachability], ReachabilityProbe, statements=(REACHABILITY_QUERY,)
    ),
    "replication": _kind(
        lambda c: [c.probes.replication], replication.replication_probe, replication.TABLES
    ),
    "replication_backlog": _kind(
        lambda c: [c.probes.replication.backlog],
        replication.ReplicationBacklogProbe,
        parent=lambda c: c.probes.replication,
        statements=replication.BACKLOG_STATEMENTS,
    ),
    "latency": _kind(lambda c: [c.probes.latency], latency.LatencyProbe, latency.TABLES),
    # Not nested under `latency` for its enabling: the server's view needs no client timing.
    "server_latency": _kind(
        lambda c: [c.probes.latency.server],
        latency.ServerLatencyProbe,
        statements=latency.SERVER_STATEMENTS,
    ),
    "read_model": _kind(lambda c: c.read_models, read_models.read_model_probe),
}
"""Every probe kind by name (the probes' `kind`), in the order probes are built."""


def build_probes(context: ProbeContext) -> list[Probe]:
    """Every enabled probe instance for the config, in registry order."""
    return [probe for kind in KINDS.values() for probe in kind.build(context)]


def tables() -> tuple[Table, ...]:
    """Every table any probe kind writes in the monitoring keyspace."""
    return tuple(table for kind in KINDS.values() for table in kind.tables)


class FamilyCollector(Collector):
    """The metric families of one probe kind: each family once, with every instance's series."""

    def __init__(self, kind: str, probes: list[Probe]) -> None:
        self.kind = kind
        self.probes = probes

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for probe in self.probes:
            for family in probe.collect():
                first = families.setdefault(family.name, family)
                if first is not family:
                    # Probes build their families anew on each collect: this one is ours.
                    first.samples.extend(family.samples)
        return list(families.values())


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
    "KINDS",
    "Kind",
    "Probe",
    "ProbeContext",
    "Table",
    "build_probes",
    "cassandra_up",
    "family_collectors",
    "tables",
]
