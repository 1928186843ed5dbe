"""The probe API the service side uses: which probes a config enables, what they write, and
their metric collectors. Nothing outside `probes/` imports a probe module but this one.

Each probe kind names the config sections it runs on and a factory: a function of the
context and one section that returns the section's probe. The registry calls it once per
enabled section, so `enabled` is judged here alone. Beside the tables a kind writes, it
declares the CQL it runs on tables that are not its own (Cassandra's system tables):
`exporter.grants` grants what that CQL and the sections' own CQL need.

Sharded (`sharding: {index, count}`), the probes are built from the shard's view of the
config (`shard_config`): its read models and declared queries only, split by Prometheus'
hashmod of their names; the replication probes in shard 0 alone; reachability everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.config import Config, ProbeSchedule
from exporter.config.health import HealthConfig, HealthGroup, known_components
from exporter.results import Check
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


def read_model_share(probe: Probe) -> bool:
    """Whether a probe's requests draw on the read models' share of the request budget (the
    others are reserved: they keep their pace, the read models get what they leave)."""
    return probe.kind == "read_model"


def read_model_name(probe: Probe) -> str | None:
    """The declared name of a read model's probe (its `read_model` label); None otherwise."""
    if isinstance(probe, read_models.ReadModelBase):
        return probe.read_model.name
    return None


def expected_requests(probe: Probe) -> dict[str, float] | None:
    """A read model's expected requests a second per datacenter at its interval; None for
    the probes of the reserved share."""
    if isinstance(probe, read_models.ReadModelBase):
        return probe.expected_requests()
    return None


def build_probes(context: ProbeContext) -> list[Probe]:
    """Every enabled probe instance for the config's shard, in registry order.

    The service gives the shard's view already (`shard_config`); narrowing is idempotent, so
    a whole config is narrowed here all the same.
    """
    if context.config.sharding.sharded:
        config = shard_config(context.config)
        context = ProbeContext(config, context.connection, context.clock, context.starting_until)
    return [probe for kind in KINDS.values() for probe in kind.build(context)]


def shard_config(config: Config) -> Config:
    """The config as one shard sees it: the read models and declared queries whose names
    hash to it, replication only in shard 0, health groups without the others' components.

    Unsharded, the config itself; narrowing a narrowed view changes nothing.
    """
    sharding = config.sharding
    if not sharding.sharded:
        return config
    models = [m for m in config.read_models if sharding.owns(m.name)]
    latency = config.probes.latency
    latency = latency.model_copy(
        update={"queries": [q for q in latency.queries if sharding.owns(q.name)]}
    )
    replication = config.probes.replication
    if not sharding.runs_replication:
        replication = replication.model_copy(update={"enabled": False})
    probes = config.probes.model_copy(update={"latency": latency, "replication": replication})
    known = known_components(config.datacenters, models, latency)
    health = _shard_health(config.health, known, replication=replication.enabled)
    return config.model_copy(update={"read_models": models, "probes": probes, "health": health})


def _shard_health(
    health: HealthConfig, known: Mapping[Check, tuple[str, ...]], *, replication: bool
) -> HealthConfig:
    """The groups with only the members this shard can report."""
    groups: dict[str, HealthGroup] = {}
    for name, group in health.groups.items():
        members = [
            m for m in group.checks
            if (replication or m.check is not Check.REPLICATION_LAG)
            and (m.component is None or m.component in known.get(m.check, ()))
        ]
        groups[name] = group.model_copy(update={"checks": members})
    return health.model_copy(update={"groups": groups})


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
    "expected_requests",
    "family_collectors",
    "read_model_name",
    "read_model_share",
    "shard_config",
    "tables",
]
